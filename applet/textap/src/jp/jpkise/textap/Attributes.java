/*
 * EF 0002 (基本4情報) of the text AP, built from the staged fields DF22 name, DF23 address, DF24 YYYYMMDD, DF25 sex:
 *   FF20 L { DF21 08 <4 × u16 offsets>, DF22 .., DF23 .., DF24 08 .., DF25 01 .. } then FF filler.
 * Each DF21 offset is that field's tag position counted from the start of the EF (soltia48/myna-card ap/text.rs,
 * which reads a real card: "FF 20 65, DF 21 08 000E 0020 0059 0064").
 */
package jp.jpkise.textap;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;

final class Attributes {
    /** Bytes kept free before the staged fields: FF20 and its length (at most 5) plus DF21 08 <8 bytes> (11). */
    static final short HEAD = (short) 16;
    private static final short TABLE = (short) 11;
    private static final short FIELDS = (short) 4;
    private static final short BIRTH = (short) 2;
    private static final short SEX = (short) 3;

    private Attributes() {
    }

    /**
     * stage[HEAD, HEAD+n) holds DF22 DF23 DF24 DF25 in that order, DER lengths, nothing after (6A80 otherwise). Writes
     * the header and the offset table in front of them, FF after them, and copies the whole EF image in one atomic
     * Util.arrayCopy (6A84 when it does not fit the EF).
     */
    static void build(byte[] stage, short n, byte[] ef) {
        short size = (short) ef.length;
        short valueLength = (short) (TABLE + n);
        short header = (short) 3;
        if (valueLength > 0x7F) {
            header = (short) 4;
        }
        if (valueLength > 0xFF) {
            header = (short) 5;
        }
        if ((short) (header + valueLength) > size) {
            ISOException.throwIt(ISO7816.SW_FILE_FULL);
        }
        short start = (short) (HEAD - TABLE - header);
        short end = (short) (HEAD + n);
        short pos = HEAD;
        short out = (short) (HEAD - 8);
        for (short k = 0; k < FIELDS; k++) {
            if ((short) (pos + 3) > end || stage[pos] != (byte) 0xDF || stage[(short) (pos + 1)] != (byte) (0x22 + k)) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            Util.setShort(stage, out, (short) (pos - start));
            out = (short) (out + 2);
            short at = (short) (pos + 2);
            short length = lengthAt(stage, at, end);
            short value = (short) (at + lengthSize(stage, at));
            if (length > (short) (end - value)) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            checkValue(k, stage, value, length);
            pos = (short) (value + length);
        }
        if (pos != end) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        stage[start] = (byte) 0xFF;
        stage[(short) (start + 1)] = (byte) 0x20;
        if (header == 3) {
            stage[(short) (start + 2)] = (byte) valueLength;
        } else if (header == 4) {
            stage[(short) (start + 2)] = (byte) 0x81;
            stage[(short) (start + 3)] = (byte) valueLength;
        } else {
            stage[(short) (start + 2)] = (byte) 0x82;
            Util.setShort(stage, (short) (start + 3), valueLength);
        }
        stage[(short) (HEAD - 11)] = (byte) 0xDF;
        stage[(short) (HEAD - 10)] = (byte) 0x21;
        stage[(short) (HEAD - 9)] = (byte) 8;
        Util.arrayFillNonAtomic(stage, end, (short) (start + size - end), (byte) 0xFF);
        Util.arrayCopy(stage, start, ef, (short) 0, size);
    }

    /** Name and address: at least one byte. Birth: 8 ASCII digits. Sex: one of '1' '2' '9'. 6A80 otherwise. */
    private static void checkValue(short k, byte[] b, short off, short len) {
        boolean ok = len > 0;
        if (k == BIRTH) {
            ok = len == 8 && TextAp.digits(b, off, len);
        } else if (k == SEX) {
            ok = len == 1 && (b[off] == (byte) '1' || b[off] == (byte) '2' || b[off] == (byte) '9');
        }
        if (!ok) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
    }

    /** The DER length at b[off] (short form, 81 xx from 80, 82 xxxx from 0100); 6A80 if cut short or not shortest. */
    private static short lengthAt(byte[] b, short off, short end) {
        short first = (short) (b[off] & 0xFF);
        if (first < 0x80) {
            return first;
        }
        short length = (short) -1;
        if (first == 0x81 && (short) (off + 2) <= end) {
            length = (short) (b[(short) (off + 1)] & 0xFF);
            if (length < 0x80) {
                length = (short) -1;
            }
        } else if (first == 0x82 && (short) (off + 3) <= end) {
            length = Util.getShort(b, (short) (off + 1));
            if (length < 0x100) {
                length = (short) -1;
            }
        }
        if (length < 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        return length;
    }

    /** Bytes of the length field at b[off] (already checked by lengthAt). */
    private static short lengthSize(byte[] b, short off) {
        short first = (short) (b[off] & 0xFF);
        if (first < 0x80) {
            return (short) 1;
        }
        return (short) (first - 0x7F);
    }
}
