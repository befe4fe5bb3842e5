/*
 * Wallet sample applet, the server side of the Shareable pair (Java Card 3.0.5 classic).
 * It hands its WalletInterface to the shop applet (AID A0000001510B000501) only, through
 * getShareableInterfaceObject; every other client gets null.
 * Selected directly:
 *   INS 50: returns the balance (2 bytes, big-endian).
 *   INS 52: credits the 2-byte amount in the command data (6700 unless Lc = 2, 6A80 unless 0 < amount,
 *           6A84 when the balance would pass 32767), returns the new balance.
 *   Other INS: 6D00.
 * The balance starts at 100.
 */
package com.jpkise.samples.wallet;

import javacard.framework.AID;
import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Shareable;
import javacard.framework.Util;

public class Wallet extends Applet implements WalletInterface {

    private static final byte INS_BALANCE = (byte) 0x50;
    private static final byte INS_CREDIT = (byte) 0x52;

    private static final short INITIAL_BALANCE = (short) 100;
    private static final short MAX_BALANCE = (short) 0x7FFF;

    /** The only client allowed to use the WalletInterface: the shop applet. */
    private static final byte[] SHOP_AID = {
        (byte) 0xA0, (byte) 0x00, (byte) 0x00, (byte) 0x01, (byte) 0x51, (byte) 0x0B, (byte) 0x00, (byte) 0x05,
        (byte) 0x01
    };

    private short balance;

    protected Wallet() {
        balance = INITIAL_BALANCE;
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        new Wallet().register(bArray, (short) (bOffset + 1), bArray[bOffset]);
    }

    public Shareable getShareableInterfaceObject(AID clientAID, byte parameter) {
        if (clientAID == null || !clientAID.equals(SHOP_AID, (short) 0, (byte) SHOP_AID.length)) {
            return null;
        }
        return this;
    }

    public short debit(short amount) {
        if (amount <= 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        if (amount > balance) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        balance = (short) (balance - amount);
        return balance;
    }

    public short balance() {
        return balance;
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buf = apdu.getBuffer();
        switch (buf[ISO7816.OFFSET_INS]) {
            case INS_BALANCE:
                break;
            case INS_CREDIT:
                credit(apdu, buf);
                break;
            default:
                ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
        Util.setShort(buf, (short) 0, balance);
        apdu.setOutgoingAndSend((short) 0, (short) 2);
    }

    private void credit(APDU apdu, byte[] buf) {
        short len = apdu.setIncomingAndReceive();
        if (len != 2) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short amount = Util.getShort(buf, ISO7816.OFFSET_CDATA);
        if (amount <= 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        if (amount > (short) (MAX_BALANCE - balance)) {
            ISOException.throwIt(ISO7816.SW_FILE_FULL);
        }
        balance = (short) (balance + amount);
    }
}
