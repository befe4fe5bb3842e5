/*
 * PIN + RSA signature sample applet (Java Card 3.0.5 classic).
 * An OwnerPIN (3 tries, at most 8 digits, "1234" at install) guards an RSA-2048 CRT key pair generated at install.
 *   INS 20 VERIFY: 9000 when the PIN matches, 63Cx (x tries left) when not, 6983 when blocked.
 *   INS 24: returns the tries remaining (1 byte).
 *   INS 30: the public modulus in two short-APDU halves: P1=00 -> bytes 0..127, P1=01 -> bytes 128..255 (else 6B00).
 *   INS 32: signs the command data with ALG_RSA_SHA_256_PKCS1 and returns the 256-byte signature; 6982 unless the
 *           PIN was verified since the applet was selected.
 *   Other INS: 6D00.
 */
package com.jpkise.samples.pinsign;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.OwnerPIN;
import javacard.framework.Util;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;
import javacard.security.RSAPublicKey;
import javacard.security.Signature;

public class PinSign extends Applet {

    private static final byte INS_VERIFY = (byte) 0x20;
    private static final byte INS_TRIES = (byte) 0x24;
    private static final byte INS_MODULUS = (byte) 0x30;
    private static final byte INS_SIGN = (byte) 0x32;

    private static final byte TRY_LIMIT = (byte) 3;
    private static final byte MAX_PIN_SIZE = (byte) 8;
    private static final short HALF = (short) 128;
    private static final short SW_PIN_TRIES_BASE = (short) 0x63C0;

    /** "1234" in ASCII. */
    private static final byte[] DEFAULT_PIN = { (byte) 0x31, (byte) 0x32, (byte) 0x33, (byte) 0x34 };

    private final OwnerPIN pin;
    private final KeyPair keys;
    private final Signature signer;

    protected PinSign() {
        pin = new OwnerPIN(TRY_LIMIT, MAX_PIN_SIZE);
        pin.update(DEFAULT_PIN, (short) 0, (byte) DEFAULT_PIN.length);
        keys = new KeyPair(KeyPair.ALG_RSA_CRT, KeyBuilder.LENGTH_RSA_2048);
        keys.genKeyPair();
        signer = Signature.getInstance(Signature.ALG_RSA_SHA_256_PKCS1, false);
        signer.init(keys.getPrivate(), Signature.MODE_SIGN);
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        new PinSign().register(bArray, (short) (bOffset + 1), bArray[bOffset]);
    }

    public void deselect() {
        pin.reset();
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buf = apdu.getBuffer();
        switch (buf[ISO7816.OFFSET_INS]) {
            case INS_VERIFY:
                verify(apdu, buf);
                return;
            case INS_TRIES:
                buf[0] = pin.getTriesRemaining();
                apdu.setOutgoingAndSend((short) 0, (short) 1);
                return;
            case INS_MODULUS:
                modulus(apdu, buf);
                return;
            case INS_SIGN:
                sign(apdu, buf);
                return;
            default:
                ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
    }

    private void verify(APDU apdu, byte[] buf) {
        if (pin.getTriesRemaining() == 0) {
            ISOException.throwIt(ISO7816.SW_FILE_INVALID);
        }
        short len = apdu.setIncomingAndReceive();
        if (!pin.check(buf, ISO7816.OFFSET_CDATA, (byte) len)) {
            ISOException.throwIt((short) (SW_PIN_TRIES_BASE | pin.getTriesRemaining()));
        }
    }

    private void modulus(APDU apdu, byte[] buf) {
        byte half = buf[ISO7816.OFFSET_P1];
        if (half != 0 && half != 1) {
            ISOException.throwIt(ISO7816.SW_WRONG_P1P2);
        }
        ((RSAPublicKey) keys.getPublic()).getModulus(buf, (short) 0);
        if (half == 1) {
            Util.arrayCopyNonAtomic(buf, HALF, buf, (short) 0, HALF);
        }
        apdu.setOutgoingAndSend((short) 0, HALF);
    }

    private void sign(APDU apdu, byte[] buf) {
        if (!pin.isValidated()) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        short len = apdu.setIncomingAndReceive();
        short sigLen = signer.sign(buf, ISO7816.OFFSET_CDATA, len, buf, (short) 0);
        apdu.setOutgoingAndSend((short) 0, sigLen);
    }
}
