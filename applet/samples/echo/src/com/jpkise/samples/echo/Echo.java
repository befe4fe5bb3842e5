/*
 * Echo sample applet (Java Card 3.0.5 classic).
 *   INS 01: echoes the command data.
 *   INS 02: returns the 17 bytes 00..10.
 *   Other INS: 6D00.
 */
package com.jpkise.samples.echo;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;

public class Echo extends Applet {

    private static final byte INS_ECHO = (byte) 0x01;
    private static final byte INS_COUNT = (byte) 0x02;
    private static final short COUNT_LENGTH = (short) 0x11;

    protected Echo() {
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        // The instance AID is the first LV of the install parameters (GP INSTALL [for install]).
        new Echo().register(bArray, (short) (bOffset + 1), bArray[bOffset]);
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buf = apdu.getBuffer();
        switch (buf[ISO7816.OFFSET_INS]) {
            case INS_ECHO: {
                short len = apdu.setIncomingAndReceive();
                Util.arrayCopyNonAtomic(buf, ISO7816.OFFSET_CDATA, buf, (short) 0, len);
                apdu.setOutgoingAndSend((short) 0, len);
                return;
            }
            case INS_COUNT: {
                for (short i = 0; i < COUNT_LENGTH; i++) {
                    buf[i] = (byte) i;
                }
                apdu.setOutgoingAndSend((short) 0, COUNT_LENGTH);
                return;
            }
            default:
                ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
    }
}
