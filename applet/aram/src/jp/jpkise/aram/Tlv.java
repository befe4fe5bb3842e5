/*
 * BER-TLV helpers for the ARA-M applet: single-byte tags, minimal definite lengths (1, 81 xx or 82 xx xx).
 * Every parse error throws ISOException 6A80 (SW_WRONG_DATA).
 */
package jp.jpkise.aram;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;

final class Tlv {

    private Tlv() {
    }

    /** The size of the length field at p (1, 2 or 3 bytes); 6A80 unless it is a minimal definite length before end. */
    static short lenSize(byte[] b, short p, short end) {
        if (p >= end) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short first = (short) (b[p] & 0xFF);
        if (first < (short) 0x80) {
            return (short) 1;
        }
        if (first == (short) 0x81) {
            if ((short) (p + 1) >= end || (short) (b[(short) (p + 1)] & 0xFF) < (short) 0x80) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            return (short) 2;
        }
        if (first == (short) 0x82) {
            if ((short) (p + 2) >= end) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            short hi = (short) (b[(short) (p + 1)] & 0xFF);
            if (hi == (short) 0 || hi >= (short) 0x80) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            return (short) 3;
        }
        ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        return (short) 0;
    }

    /** The value length of the length field at p (already checked by lenSize). */
    static short len(byte[] b, short p) {
        short first = (short) (b[p] & 0xFF);
        if (first < (short) 0x80) {
            return first;
        }
        if (first == (short) 0x81) {
            return (short) (b[(short) (p + 1)] & 0xFF);
        }
        return (short) (((short) (b[(short) (p + 1)] & 0xFF) << 8) | (short) (b[(short) (p + 2)] & 0xFF));
    }

    /** The offset of the value of the TLV at p (tag at p); 6A80 when the TLV does not fit before end. */
    static short valueOf(byte[] b, short p, short end) {
        short ls = lenSize(b, (short) (p + 1), end);
        short v = (short) (p + 1 + ls);
        short l = len(b, (short) (p + 1));
        if (l < (short) 0 || (short) (v + l) > end || (short) (v + l) < v) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        return v;
    }

    /** The offset just after the TLV at p (checked against end). */
    static short next(byte[] b, short p, short end) {
        short v = valueOf(b, p, end);
        return (short) (v + len(b, (short) (p + 1)));
    }

    /** Writes the length l at p; returns the offset after it. */
    static short putLen(byte[] b, short p, short l) {
        if (l < (short) 0x80) {
            b[p] = (byte) l;
            return (short) (p + 1);
        }
        if (l < (short) 0x100) {
            b[p] = (byte) 0x81;
            b[(short) (p + 1)] = (byte) l;
            return (short) (p + 2);
        }
        b[p] = (byte) 0x82;
        b[(short) (p + 1)] = (byte) (l >> 8);
        b[(short) (p + 2)] = (byte) l;
        return (short) (p + 3);
    }
}
