/*
 * The JPKI AP (公的個人認証AP) of the My Number Card, card profile, in Java Card 3.0.5 classic.
 * APDU table, status words and personalisation commands: applet/jpki/README.md. Facts: shared reference jpki.md
 * (OpenSC card-jpki.c, jpki/myna, soltia48/myna-card).
 *
 * Files (FID → content, access): 0001 sign cert (sign password), 0002 sign CA cert, 0006 token info (160 B),
 * 0008 certificate availability (3 B), 000A auth cert (free; auth PIN on the smartphone profile), 000B auth CA cert,
 * 0017 auth private key (auth PIN), 0018 auth PIN (4 digits, 3 tries), 001A sign private key (sign password),
 * 001B sign password (6-16 of [A-Z0-9], 5 tries).
 * A successful VERIFY stays in effect across EF selections until the AP is deselected or reselected, or the card reset.
 */
package jp.jpkise.jpki;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.OwnerPIN;
import javacard.framework.Util;
import javacard.security.KeyBuilder;
import javacard.security.RSAPrivateCrtKey;
import javacard.security.RandomData;
import javacardx.crypto.Cipher;

public class Jpki extends Applet {

    // ISO / JPKI commands
    private static final byte INS_SELECT = (byte) 0xA4;
    private static final byte INS_READ_BINARY = (byte) 0xB0;
    private static final byte INS_VERIFY = (byte) 0x20;
    private static final byte INS_CHANGE_REFERENCE_DATA = (byte) 0x24;
    private static final byte INS_GET_CHALLENGE = (byte) 0x84;
    private static final byte INS_COMPUTE_SIGNATURE = (byte) 0x2A;
    private static final byte INS_SET_SESSION_KEY = (byte) 0xAE;
    // Personalisation (CLA 80, only before LOCK; afterwards they answer 6D00 like any unknown INS)
    private static final byte INS_PERSO_WRITE_EF = (byte) 0xD0;
    private static final byte INS_PERSO_KEY = (byte) 0xD2;
    private static final byte INS_PERSO_PIN = (byte) 0xD4;
    private static final byte INS_PERSO_LOCK = (byte) 0xD6;
    private static final byte INS_PERSO_PROFILE = (byte) 0xD8;

    private static final byte CLA_ISO = (byte) 0x00;
    private static final byte CLA_PROPRIETARY = (byte) 0x80;

    private static final short SW_PIN_TRIES = (short) 0x63C0;
    private static final short SW_BLOCKED = (short) 0x6984;
    private static final short SW_COMMAND_INCOMPATIBLE = (short) 0x6981;
    private static final short SW_REF_NOT_FOUND = (short) 0x6A88;

    private static final short CERT_SIZE = (short) 0x0800;
    private static final short TOKEN_INFO_SIZE = (short) 160;
    private static final short TOKEN_NAME_SIZE = (short) 32;
    private static final short MAX_SIGN_INPUT = (short) 245;
    private static final short KEY_PART = (short) 128;

    private static final byte AUTH_TRIES = (byte) 3;
    private static final byte SIGN_TRIES = (byte) 5;
    private static final byte MAX_PIN = (byte) 16;

    private static final byte PROFILE_CARD = (byte) 0;
    private static final byte PROFILE_PHONE = (byte) 1;

    // Indexes into files[]
    private static final byte F_SIGN_CERT = (byte) 0;
    private static final byte F_TOKEN_INFO = (byte) 2;
    private static final byte F_AUTH_CERT = (byte) 4;
    private static final byte F_AUTH_KEY = (byte) 6;
    private static final byte F_AUTH_PIN = (byte) 7;
    private static final byte F_SIGN_KEY = (byte) 8;
    private static final byte F_SIGN_PIN = (byte) 9;

    /** "JPKIAPICCTOKEN2" (card) and "JPKIAPGPSETOKEN" (Android GP-SE). */
    private static final byte[] TOKEN_CARD = { (byte) 'J', (byte) 'P', (byte) 'K', (byte) 'I', (byte) 'A', (byte) 'P',
        (byte) 'I', (byte) 'C', (byte) 'C', (byte) 'T', (byte) 'O', (byte) 'K', (byte) 'E', (byte) 'N', (byte) '2' };
    private static final byte[] TOKEN_PHONE = { (byte) 'J', (byte) 'P', (byte) 'K', (byte) 'I', (byte) 'A', (byte) 'P',
        (byte) 'G', (byte) 'P', (byte) 'S', (byte) 'E', (byte) 'T', (byte) 'O', (byte) 'K', (byte) 'E', (byte) 'N' };

    private final Ef[] files;
    private final OwnerPIN authPin;
    private final OwnerPIN signPin;
    private final RSAPrivateCrtKey authKey;
    private final RSAPrivateCrtKey signKey;
    private final Cipher rsa;
    private final RandomData random;
    /** [0]: index + 1 of the current EF, 0 when none (cleared on deselect). */
    private final byte[] current;
    /** False while the issuer personalises; LOCK sets it for good. */
    private boolean locked;

    protected Jpki() {
        files = new Ef[10];
        files[0] = new Ef((short) 0x0001, Ef.BINARY, Ef.SIGN, CERT_SIZE);
        files[1] = new Ef((short) 0x0002, Ef.BINARY, Ef.FREE, CERT_SIZE);
        files[2] = new Ef((short) 0x0006, Ef.BINARY, Ef.FREE, TOKEN_INFO_SIZE);
        files[3] = new Ef((short) 0x0008, Ef.BINARY, Ef.FREE, (short) 3);
        files[4] = new Ef((short) 0x000A, Ef.BINARY, Ef.FREE, CERT_SIZE);
        files[5] = new Ef((short) 0x000B, Ef.BINARY, Ef.FREE, CERT_SIZE);
        files[6] = new Ef((short) 0x0017, Ef.KEY, Ef.AUTH, (short) 0);
        files[7] = new Ef((short) 0x0018, Ef.PIN, Ef.FREE, (short) 0);
        files[8] = new Ef((short) 0x001A, Ef.KEY, Ef.SIGN, (short) 0);
        files[9] = new Ef((short) 0x001B, Ef.PIN, Ef.FREE, (short) 0);
        Util.arrayFillNonAtomic(files[3].body, (short) 0, (short) 3, (byte) 0);
        authPin = new OwnerPIN(AUTH_TRIES, MAX_PIN);
        signPin = new OwnerPIN(SIGN_TRIES, MAX_PIN);
        authKey = (RSAPrivateCrtKey) KeyBuilder.buildKey(KeyBuilder.TYPE_RSA_CRT_PRIVATE, KeyBuilder.LENGTH_RSA_2048, false);
        signKey = (RSAPrivateCrtKey) KeyBuilder.buildKey(KeyBuilder.TYPE_RSA_CRT_PRIVATE, KeyBuilder.LENGTH_RSA_2048, false);
        rsa = Cipher.getInstance(Cipher.ALG_RSA_PKCS1, false);
        random = RandomData.getInstance(RandomData.ALG_SECURE_RANDOM);
        current = JCSystem.makeTransientByteArray((short) 1, JCSystem.CLEAR_ON_DESELECT);
        setProfile(PROFILE_CARD);
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        new Jpki().register(bArray, (short) (bOffset + 1), bArray[bOffset]);
    }

    public boolean select() {
        authPin.reset();
        signPin.reset();
        current[0] = (byte) 0;
        return true;
    }

    public void deselect() {
        authPin.reset();
        signPin.reset();
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buf = apdu.getBuffer();
        byte cla = (byte) (buf[ISO7816.OFFSET_CLA] & (byte) 0xFC);
        byte ins = buf[ISO7816.OFFSET_INS];
        if (cla != CLA_ISO && cla != CLA_PROPRIETARY) {
            ISOException.throwIt(ISO7816.SW_CLA_NOT_SUPPORTED);
        }
        switch (ins) {
            case INS_SELECT:
                requireCla(cla, CLA_ISO);
                selectFile(apdu, buf);
                return;
            case INS_READ_BINARY:
                requireCla(cla, CLA_ISO);
                readBinary(apdu, buf);
                return;
            case INS_VERIFY:
                requireCla(cla, CLA_ISO);
                verify(apdu, buf);
                return;
            case INS_CHANGE_REFERENCE_DATA:
                requireCla(cla, CLA_ISO);
                changeReferenceData(apdu, buf);
                return;
            case INS_GET_CHALLENGE:
                requireCla(cla, CLA_ISO);
                getChallenge(apdu, buf);
                return;
            case INS_COMPUTE_SIGNATURE:
                requireCla(cla, CLA_PROPRIETARY);
                sign(apdu, buf);
                return;
            case INS_SET_SESSION_KEY:
                requireCla(cla, CLA_PROPRIETARY);
                ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
                return;
            default:
                break;
        }
        if (!locked && cla == CLA_PROPRIETARY) {
            switch (ins) {
                case INS_PERSO_WRITE_EF:
                    persoWriteEf(apdu, buf);
                    return;
                case INS_PERSO_KEY:
                    persoKey(apdu, buf);
                    return;
                case INS_PERSO_PIN:
                    persoPin(apdu, buf);
                    return;
                case INS_PERSO_PROFILE:
                    setProfile(buf[ISO7816.OFFSET_P2]);
                    return;
                case INS_PERSO_LOCK:
                    locked = true;
                    return;
                default:
                    break;
            }
        }
        ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
    }

    private static void requireCla(byte cla, byte expected) {
        if (cla != expected) {
            ISOException.throwIt(ISO7816.SW_CLA_NOT_SUPPORTED);
        }
    }

    /** Index of the EF with this FID, or -1. */
    private short find(short fid) {
        for (short i = 0; i < (short) files.length; i++) {
            if (files[i].fid == fid) {
                return i;
            }
        }
        return (short) -1;
    }

    /** The EF named by a P2 of 80 (current EF) or 80|sfi (FID 00sfi); throws otherwise. */
    private Ef referenced(byte p2) {
        if ((p2 & (byte) 0xE0) != (byte) 0x80) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        short sfi = (short) (p2 & 0x1F);
        if (sfi == 0) {
            if (current[0] == 0) {
                ISOException.throwIt(ISO7816.SW_COMMAND_NOT_ALLOWED);
            }
            return files[(short) (current[0] - 1)];
        }
        short i = find(sfi);
        if (i < 0) {
            ISOException.throwIt(SW_REF_NOT_FOUND);
        }
        return files[i];
    }

    private boolean granted(byte access) {
        if (access == Ef.AUTH) {
            return authPin.isValidated();
        }
        if (access == Ef.SIGN) {
            return signPin.isValidated();
        }
        return true;
    }

    private OwnerPIN pinOf(Ef ef) {
        if (ef.fid == (short) 0x0018) {
            return authPin;
        }
        return signPin;
    }

    // SELECT: P1=02 (EF under the AP, by FID, Lc=2); P1=04 reaches the applet only for an AID that is no applet: 6A82.
    private void selectFile(APDU apdu, byte[] buf) {
        byte p1 = buf[ISO7816.OFFSET_P1];
        byte p2 = buf[ISO7816.OFFSET_P2];
        short len = apdu.setIncomingAndReceive();
        if (p1 == (byte) 0x04) {
            ISOException.throwIt(ISO7816.SW_FILE_NOT_FOUND);
        }
        if (p1 != (byte) 0x02 || (p2 != (byte) 0x0C && p2 != (byte) 0x00)) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (len != 2) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short i = find(Util.getShort(buf, ISO7816.OFFSET_CDATA));
        if (i < 0) {
            ISOException.throwIt(ISO7816.SW_FILE_NOT_FOUND);
        }
        current[0] = (byte) (i + 1);
    }

    // READ BINARY: P1P2 = 15-bit offset of the current EF, or P1 = 100sssss (SFI, which becomes current) and P2 = offset.
    private void readBinary(APDU apdu, byte[] buf) {
        byte p1 = buf[ISO7816.OFFSET_P1];
        short offset;
        if ((p1 & (byte) 0x80) != 0) {
            if ((p1 & (byte) 0x60) != 0) {
                ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
            }
            short i = find((short) (p1 & 0x1F));
            if (i < 0) {
                ISOException.throwIt(ISO7816.SW_FILE_NOT_FOUND);
            }
            current[0] = (byte) (i + 1);
            offset = (short) (buf[ISO7816.OFFSET_P2] & 0xFF);
        } else {
            if (current[0] == 0) {
                ISOException.throwIt(ISO7816.SW_COMMAND_NOT_ALLOWED);
            }
            offset = Util.getShort(buf, ISO7816.OFFSET_P1);
        }
        Ef ef = files[(short) (current[0] - 1)];
        if (ef.kind != Ef.BINARY) {
            ISOException.throwIt(SW_COMMAND_INCOMPATIBLE);
        }
        if (!granted(ef.access)) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        short size = (short) ef.body.length;
        if (offset >= size) {
            ISOException.throwIt(ISO7816.SW_WRONG_P1P2);
        }
        short le = apdu.setOutgoing();
        short n = (short) (size - offset);
        if (le < n) {
            n = le;
        }
        apdu.setOutgoingLength(n);
        apdu.sendBytesLong(ef.body, offset, n);
    }

    // VERIFY: P1=00, P2=80 (current EF) or 80|sfi. No data: 9000 if verified, else 63Cx. 6984 once blocked.
    private void verify(APDU apdu, byte[] buf) {
        if (buf[ISO7816.OFFSET_P1] != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        Ef ef = referenced(buf[ISO7816.OFFSET_P2]);
        if (ef.kind != Ef.PIN) {
            ISOException.throwIt(SW_REF_NOT_FOUND);
        }
        OwnerPIN pin = pinOf(ef);
        short len = apdu.setIncomingAndReceive();
        if (len == 0) {
            if (pin.isValidated()) {
                return;
            }
            ISOException.throwIt((short) (SW_PIN_TRIES | pin.getTriesRemaining()));
        }
        if (pin.getTriesRemaining() == 0) {
            ISOException.throwIt(SW_BLOCKED);
        }
        // OwnerPIN.check decrements the counter durably before comparing and restores it only on a match.
        if (!pin.check(buf, ISO7816.OFFSET_CDATA, (byte) len)) {
            ISOException.throwIt((short) (SW_PIN_TRIES | pin.getTriesRemaining()));
        }
    }

    // CHANGE REFERENCE DATA: 00 24 01 80|sfi <new PIN>, after a successful VERIFY of the same PIN.
    private void changeReferenceData(APDU apdu, byte[] buf) {
        if (buf[ISO7816.OFFSET_P1] != (byte) 0x01) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        Ef ef = referenced(buf[ISO7816.OFFSET_P2]);
        if (ef.kind != Ef.PIN) {
            ISOException.throwIt(SW_REF_NOT_FOUND);
        }
        OwnerPIN pin = pinOf(ef);
        short len = apdu.setIncomingAndReceive();
        if (pin.getTriesRemaining() == 0) {
            ISOException.throwIt(SW_BLOCKED);
        }
        if (!pin.isValidated()) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        checkFormat(ef, buf, ISO7816.OFFSET_CDATA, len);
        pin.update(buf, ISO7816.OFFSET_CDATA, (byte) len);
    }

    /** Auth PIN: 4 ASCII digits. Sign password: 6-16 of [A-Z0-9]. 6A80 otherwise. */
    private static void checkFormat(Ef ef, byte[] buf, short off, short len) {
        boolean auth = ef.fid == (short) 0x0018;
        boolean badLength = len < 6 || len > 16;
        if (auth) {
            badLength = len != 4;
        }
        if (badLength) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        for (short i = 0; i < len; i++) {
            byte c = buf[(short) (off + i)];
            boolean digit = c >= (byte) '0' && c <= (byte) '9';
            boolean upper = c >= (byte) 'A' && c <= (byte) 'Z';
            if (!digit && (auth || !upper)) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
        }
    }

    private void getChallenge(APDU apdu, byte[] buf) {
        if (Util.getShort(buf, ISO7816.OFFSET_P1) != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        short le = apdu.setOutgoing();
        random.generateData(buf, (short) 0, le);
        apdu.setOutgoingLength(le);
        apdu.sendBytes((short) 0, le);
    }

    // COMPUTE DIGITAL SIGNATURE: 80 2A 00 80|sfi <DigestInfo> 00 → PKCS#1 v1.5 type 1 block under the private key.
    private void sign(APDU apdu, byte[] buf) {
        if (buf[ISO7816.OFFSET_P1] != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        Ef ef = referenced(buf[ISO7816.OFFSET_P2]);
        if (ef.kind != Ef.KEY) {
            ISOException.throwIt(SW_REF_NOT_FOUND);
        }
        if (!granted(ef.access)) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        RSAPrivateCrtKey key = signKey;
        if (ef.fid == (short) 0x0017) {
            key = authKey;
        }
        if (!key.isInitialized()) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        short len = apdu.setIncomingAndReceive();
        if (len < 1 || len > MAX_SIGN_INPUT) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        rsa.init(key, Cipher.MODE_ENCRYPT);
        short n = rsa.doFinal(buf, ISO7816.OFFSET_CDATA, len, buf, (short) 0);
        apdu.setOutgoingAndSend((short) 0, n);
    }

    // ---- personalisation (before LOCK) ----

    /** 80 D0 <FID> Lc <offset(2)> <data>: writes data into the EF body at offset (atomically). */
    private void persoWriteEf(APDU apdu, byte[] buf) {
        short len = apdu.setIncomingAndReceive();
        short i = find(Util.getShort(buf, ISO7816.OFFSET_P1));
        if (i < 0) {
            ISOException.throwIt(ISO7816.SW_FILE_NOT_FOUND);
        }
        Ef ef = files[i];
        if (ef.kind != Ef.BINARY) {
            ISOException.throwIt(SW_COMMAND_INCOMPATIBLE);
        }
        if (len < 2) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short offset = Util.getShort(buf, ISO7816.OFFSET_CDATA);
        short n = (short) (len - 2);
        if (offset < 0 || (short) (offset + n) > (short) ef.body.length || (short) (offset + n) < 0) {
            ISOException.throwIt(ISO7816.SW_FILE_FULL);
        }
        Util.arrayCopy(buf, (short) (ISO7816.OFFSET_CDATA + 2), ef.body, offset, n);
    }

    /** 80 D2 <component 01 P, 02 Q, 03 DP1, 04 DQ1, 05 PQ> <key FID low byte 17|1A> Lc <128 bytes>. */
    private void persoKey(APDU apdu, byte[] buf) {
        short len = apdu.setIncomingAndReceive();
        byte p2 = buf[ISO7816.OFFSET_P2];
        RSAPrivateCrtKey key = null;
        if (p2 == (byte) 0x17) {
            key = authKey;
        } else if (p2 == (byte) 0x1A) {
            key = signKey;
        } else {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (len != KEY_PART) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        switch (buf[ISO7816.OFFSET_P1]) {
            case 1:
                key.setP(buf, ISO7816.OFFSET_CDATA, len);
                return;
            case 2:
                key.setQ(buf, ISO7816.OFFSET_CDATA, len);
                return;
            case 3:
                key.setDP1(buf, ISO7816.OFFSET_CDATA, len);
                return;
            case 4:
                key.setDQ1(buf, ISO7816.OFFSET_CDATA, len);
                return;
            case 5:
                key.setPQ(buf, ISO7816.OFFSET_CDATA, len);
                return;
            default:
                ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
    }

    /** 80 D4 00 <PIN FID low byte 18|1B> Lc <PIN>: sets the PIN (format checked) with a full try counter. */
    private void persoPin(APDU apdu, byte[] buf) {
        short len = apdu.setIncomingAndReceive();
        short i = find((short) (buf[ISO7816.OFFSET_P2] & 0xFF));
        if (buf[ISO7816.OFFSET_P1] != 0 || i < 0 || files[i].kind != Ef.PIN) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        checkFormat(files[i], buf, ISO7816.OFFSET_CDATA, len);
        pinOf(files[i]).update(buf, ISO7816.OFFSET_CDATA, (byte) len);
    }

    /** Profile 00 card, 01 smartphone (GP-SE): the token name in EF 0006 and the access rule of EF 000A. */
    private void setProfile(byte profile) {
        byte[] name;
        if (profile == PROFILE_CARD) {
            name = TOKEN_CARD;
            files[F_AUTH_CERT].access = Ef.FREE;
        } else if (profile == PROFILE_PHONE) {
            name = TOKEN_PHONE;
            files[F_AUTH_CERT].access = Ef.AUTH;
        } else {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
            return;
        }
        byte[] info = files[F_TOKEN_INFO].body;
        Util.arrayFillNonAtomic(info, (short) 0, TOKEN_NAME_SIZE, (byte) 0x20);
        Util.arrayCopyNonAtomic(name, (short) 0, info, (short) 0, (short) name.length);
    }
}
