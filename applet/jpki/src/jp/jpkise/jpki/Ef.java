/*
 * One elementary file of the JPKI AP: its file identifier, its kind (transparent binary, PIN, private key) and the
 * reference that guards reading (binary) or using (key) it.
 */
package jp.jpkise.jpki;

final class Ef {
    static final byte BINARY = (byte) 1;
    static final byte PIN = (byte) 2;
    static final byte KEY = (byte) 3;

    /** Access condition: free, auth PIN (EF 0018) verified, sign password (EF 001B) verified. */
    static final byte FREE = (byte) 0;
    static final byte AUTH = (byte) 1;
    static final byte SIGN = (byte) 2;

    final short fid;
    final byte kind;
    byte access;
    /**
     * BINARY: the file body (its whole size, FF filler after the data); null for PIN and KEY files. A certificate write
     * swaps it with the staging buffer inside one transaction, so the EF changes all at once.
     */
    byte[] body;
    /** Set by ERASE in its transaction: the EF reads as FF whatever the body holds (its FF fill runs after the commit). */
    boolean erased;

    Ef(short fid, byte kind, byte access, short size) {
        this.fid = fid;
        this.kind = kind;
        this.access = access;
        if (size > 0) {
            body = new byte[size];
            javacard.framework.Util.arrayFillNonAtomic(body, (short) 0, size, (byte) 0xFF);
        } else {
            body = null;
        }
    }
}
