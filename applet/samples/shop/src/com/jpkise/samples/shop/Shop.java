/*
 * Shop sample applet, the client side of the Shareable pair (Java Card 3.0.5 classic). It imports the wallet package
 * and calls the wallet applet (AID A0000001510B000401) through JCSystem.getAppletShareableInterfaceObject.
 *   INS 60: buys for the 2-byte price in the command data (6700 unless Lc = 2): WalletInterface.debit(price), returns
 *           the new balance (2 bytes). The wallet's own errors pass through (6A80 price not positive, 6985 balance
 *           too low).
 *   INS 62: returns WalletInterface.balance() (2 bytes).
 *   Both: 6A88 when the wallet is not installed, 6982 when it refuses to share its interface.
 *   Other INS: 6D00.
 */
package com.jpkise.samples.shop;

import com.jpkise.samples.wallet.WalletInterface;
import javacard.framework.AID;
import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Shareable;
import javacard.framework.Util;

public class Shop extends Applet {

    private static final byte INS_BUY = (byte) 0x60;
    private static final byte INS_BALANCE = (byte) 0x62;

    private static final short SW_REFERENCED_DATA_NOT_FOUND = (short) 0x6A88;

    private static final byte[] WALLET_AID = {
        (byte) 0xA0, (byte) 0x00, (byte) 0x00, (byte) 0x01, (byte) 0x51, (byte) 0x0B, (byte) 0x00, (byte) 0x04,
        (byte) 0x01
    };

    protected Shop() {
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        new Shop().register(bArray, (short) (bOffset + 1), bArray[bOffset]);
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buf = apdu.getBuffer();
        short result = 0;
        switch (buf[ISO7816.OFFSET_INS]) {
            case INS_BUY: {
                short len = apdu.setIncomingAndReceive();
                if (len != 2) {
                    ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
                }
                short price = Util.getShort(buf, ISO7816.OFFSET_CDATA);
                result = wallet().debit(price);
                break;
            }
            case INS_BALANCE:
                result = wallet().balance();
                break;
            default:
                ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
        Util.setShort(buf, (short) 0, result);
        apdu.setOutgoingAndSend((short) 0, (short) 2);
    }

    /** The wallet's Shareable interface object; 6A88 when no wallet is installed, 6982 when it refuses. */
    private WalletInterface wallet() {
        AID aid = JCSystem.lookupAID(WALLET_AID, (short) 0, (byte) WALLET_AID.length);
        if (aid == null) {
            ISOException.throwIt(SW_REFERENCED_DATA_NOT_FOUND);
        }
        Shareable sio = JCSystem.getAppletShareableInterfaceObject(aid, (byte) 0);
        if (sio == null) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        return (WalletInterface) sio;
    }
}
