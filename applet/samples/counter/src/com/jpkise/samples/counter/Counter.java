/*
 * Counter sample applet (Java Card 3.0.5 classic): a persistent counter updated inside transactions.
 *   INS 10: counter += 1 inside beginTransaction/commitTransaction (also logs the low byte of the new value in a
 *           16-byte persistent ring), returns the new value (2 bytes, big-endian).
 *   INS 12: begins a transaction, adds 1, aborts: the counter is unchanged; returns it (2 bytes).
 *   INS 14: returns the counter (2 bytes).
 *   Other INS: 6D00.
 */
package com.jpkise.samples.counter;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;

public class Counter extends Applet {

    private static final byte INS_INCREMENT = (byte) 0x10;
    private static final byte INS_ABORTED = (byte) 0x12;
    private static final byte INS_READ = (byte) 0x14;

    private static final short LOG_SIZE = (short) 16;
    private static final short LOG_MASK = (short) 0x0F;

    private short counter;
    private final byte[] log;

    protected Counter() {
        log = new byte[LOG_SIZE];
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        new Counter().register(bArray, (short) (bOffset + 1), bArray[bOffset]);
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buf = apdu.getBuffer();
        switch (buf[ISO7816.OFFSET_INS]) {
            case INS_INCREMENT:
                JCSystem.beginTransaction();
                counter = (short) (counter + 1);
                log[(short) (counter & LOG_MASK)] = (byte) counter;
                JCSystem.commitTransaction();
                break;
            case INS_ABORTED:
                JCSystem.beginTransaction();
                counter = (short) (counter + 1);
                JCSystem.abortTransaction();
                break;
            case INS_READ:
                break;
            default:
                ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
        send(apdu);
    }

    /** Sends the counter as two bytes. */
    private void send(APDU apdu) {
        Util.setShort(apdu.getBuffer(), (short) 0, counter);
        apdu.setOutgoingAndSend((short) 0, (short) 2);
    }
}
