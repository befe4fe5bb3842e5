/*
 * ARA-M: the Access Rule Application Master of GlobalPlatform Secure Element Access Control 1.1 (Java Card 3.0.5
 * classic, GP API 1.6). AID A00000015141434C00. The APDU table is in ../../../../README.md (applet/aram/README.md).
 *
 * Rules are kept as their REF-AR-DO TLVs (E2 { E1 { 4F|C0, C1 }, E3 {...} }) back to back in one persistent byte
 * array; deletion compacts it in one pass. Every update runs inside a transaction together with the refresh tag.
 * Updates: STORE DATA forwarded by the security domain (INSTALL [for personalization], Application.processData), or
 * sent directly to the selected applet when the install parameters (C9) start with a byte whose bit 1 is set.
 * The update path touches persistent fields only: processData runs while the security domain is the selected applet,
 * when this applet's CLEAR_ON_DESELECT arrays may not be accessed (JCRE, transient objects and applet contexts).
 */
package jp.jpkise.aram;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.RandomData;
import org.globalplatform.Application;

public class AraM extends Applet implements Application {

    private static final byte INS_GET_DATA = (byte) 0xCA;
    private static final byte INS_STORE_DATA = (byte) 0xE2;

    private static final short P1P2_ALL = (short) 0xFF40;
    private static final short P1P2_SPECIFIC = (short) 0xFF50;
    private static final short P1P2_NEXT = (short) 0xFF60;
    private static final short P1P2_REFRESH = (short) 0xDF20;

    private static final byte CMD_STORE = (byte) 0xF0;
    private static final byte CMD_DELETE = (byte) 0xF1;
    private static final byte CMD_REFRESH = (byte) 0xF2;

    private static final byte TAG_REF_AR_DO = (byte) 0xE2;
    private static final byte TAG_REF_DO = (byte) 0xE1;
    private static final byte TAG_AR_DO = (byte) 0xE3;
    private static final byte TAG_AID_REF_DO = (byte) 0x4F;
    private static final byte TAG_DEFAULT_AID_REF_DO = (byte) 0xC0;
    private static final byte TAG_HASH_REF_DO = (byte) 0xC1;
    private static final byte TAG_APDU_AR_DO = (byte) 0xD0;
    private static final byte TAG_NFC_AR_DO = (byte) 0xD1;
    private static final byte TAG_PERM_AR_DO = (byte) 0xDB;

    /** SW 6A88: referenced data (rule) not found. */
    private static final short SW_NOT_FOUND = (short) 0x6A88;
    /** SW 6A89: a rule with the same REF-DO already exists (SEAC STORE DATA status words). */
    private static final short SW_ALREADY_EXISTS = (short) 0x6A89;
    /** SW 6981: a SEAC data object this ARA-M does not support. */
    private static final short SW_DO_NOT_SUPPORTED = (short) 0x6981;
    /** SW 6984: the rules changed since GET DATA [all]; they must be read again (SEAC 1.1 GET DATA status words). */
    private static final short SW_RULES_CHANGED = (short) 0x6984;

    private static final short STORE_SIZE = (short) 2048;
    /** The largest REF-AR-DO accepted (so that a GET DATA [specific] answer fits one response). */
    private static final short MAX_RULE = (short) 240;
    private static final short CHUNK = (short) 256;

    private final byte[] rules;
    private short used;
    private final byte[] refreshTag;
    private final boolean directStore;
    /** [0] next offset in the GET DATA [all] stream, [1] its length (0: nothing pending). */
    private final short[] pending;
    /** The refresh tag when the pending GET DATA [all] began: a different tag now means the rules changed. */
    private final byte[] pendingTag;

    protected AraM(boolean directStore) {
        rules = new byte[STORE_SIZE];
        refreshTag = new byte[8];
        RandomData.getInstance(RandomData.ALG_SECURE_RANDOM).generateData(refreshTag, (short) 0, (short) 8);
        pending = JCSystem.makeTransientShortArray((short) 2, JCSystem.CLEAR_ON_DESELECT);
        pendingTag = JCSystem.makeTransientByteArray((short) 8, JCSystem.CLEAR_ON_DESELECT);
        this.directStore = directStore;
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        short p = (short) (bOffset + 1 + bArray[bOffset]); // privileges
        p = (short) (p + 1 + bArray[p]); // application specific parameters
        boolean direct = bArray[p] > 0 && (bArray[(short) (p + 1)] & 0x01) != 0;
        new AraM(direct).register(bArray, (short) (bOffset + 1), bArray[bOffset]);
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buf = apdu.getBuffer();
        byte cla = buf[ISO7816.OFFSET_CLA];
        if ((byte) (cla & 0xFC) != (byte) 0x80 && (byte) (cla & 0xF0) != (byte) 0xC0) {
            ISOException.throwIt(ISO7816.SW_CLA_NOT_SUPPORTED);
        }
        switch (buf[ISO7816.OFFSET_INS]) {
            case INS_GET_DATA:
                getData(apdu, buf);
                break;
            case INS_STORE_DATA:
                storeDataDirect(apdu, buf);
                break;
            default:
                ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
    }

    /** STORE DATA forwarded by the security domain: the whole command (header, Lc, data) at off. */
    public void processData(byte[] buf, short off, short len) {
        if (len < (short) 5) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short data = (short) (off + 5);
        if (buf[(short) (off + 4)] == (byte) 0 && len >= (short) 7) {
            data = (short) (off + 7);
        }
        command(buf, data, (short) (off + len - data));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // STORE DATA
    // ---------------------------------------------------------------------------------------------------------------

    private void storeDataDirect(APDU apdu, byte[] buf) {
        if (!directStore) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        byte p1 = buf[ISO7816.OFFSET_P1];
        // Last block, no encryption, BER-TLV or no format; one block only.
        if ((p1 & 0x80) == 0 || (p1 & 0x60) != 0 || (p1 & 0x18) == 0x08 || (p1 & 0x18) == 0x18
            || buf[ISO7816.OFFSET_P2] != (byte) 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        short n = apdu.setIncomingAndReceive();
        if (n != apdu.getIncomingLength()) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        command(buf, apdu.getOffsetCdata(), n);
    }

    /** One Command-*-DO: F0 (store), F1 (delete), F2 (update refresh tag), spanning exactly len bytes. */
    private void command(byte[] b, short off, short len) {
        short end = (short) (off + len);
        if (len < (short) 2) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short v = Tlv.valueOf(b, off, end);
        short vEnd = (short) (v + Tlv.len(b, (short) (off + 1)));
        if (vEnd != end) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        switch (b[off]) {
            case CMD_STORE:
                store(b, v, vEnd);
                break;
            case CMD_DELETE:
                delete(b, v, vEnd);
                break;
            case CMD_REFRESH:
                if (v != vEnd) {
                    ISOException.throwIt(ISO7816.SW_WRONG_DATA);
                }
                JCSystem.beginTransaction();
                bumpRefreshTag();
                JCSystem.commitTransaction();
                break;
            default:
                // Block-DO and the ARA-C commands (Get, Get-All, Get-Next, Get-Client-AIDs, Register-Client-AIDs,
                // Get-Device-Config) are SEAC 1.1 DOs this ARA-M does not support (Table 5-1): 6981.
                byte t = b[off];
                if (t == (byte) 0xE7 || (t >= (byte) 0xF3 && t <= (byte) 0xF8)) {
                    ISOException.throwIt(SW_DO_NOT_SUPPORTED);
                }
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
    }

    /** Command-Store-REF-AR-DO: one or more REF-AR-DOs, all validated before any is written. */
    private void store(byte[] b, short p, short end) {
        if (p == end) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short total = (short) 0;
        for (short q = p; q < end; ) {
            short n = validateRefArDo(b, q, end);
            short size = (short) (n - q);
            if (find(b, (short) (Tlv.valueOf(b, q, end))) >= (short) 0) {
                ISOException.throwIt(SW_ALREADY_EXISTS);
            }
            // Duplicates inside the same command.
            for (short r = p; r < q; r = Tlv.next(b, r, end)) {
                if (sameTlv(b, Tlv.valueOf(b, r, end), b, Tlv.valueOf(b, q, end))) {
                    ISOException.throwIt(SW_ALREADY_EXISTS);
                }
            }
            total = (short) (total + size);
            q = n;
        }
        if (total > (short) (STORE_SIZE - used)) {
            ISOException.throwIt(ISO7816.SW_FILE_FULL);
        }
        JCSystem.beginTransaction();
        Util.arrayCopy(b, p, rules, used, total);
        used = (short) (used + total);
        bumpRefreshTag();
        JCSystem.commitTransaction();
    }

    /** Command-Delete: empty (all rules), an AID-REF-DO (4F or C0: its rules), a REF-DO or a REF-AR-DO (that rule). */
    private void delete(byte[] b, short p, short end) {
        short key = p;
        byte mode = (byte) 0; // 0 all, 1 by AID-REF-DO, 2 by REF-DO
        if (p != end) {
            if (Tlv.next(b, p, end) != end) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            byte tag = b[p];
            if (tag == TAG_AID_REF_DO || tag == TAG_DEFAULT_AID_REF_DO) {
                validateAidRefDo(b, p, end);
                mode = (byte) 1;
            } else if (tag == TAG_REF_DO) {
                validateRefDo(b, p, end);
                mode = (byte) 2;
            } else if (tag == TAG_REF_AR_DO) {
                validateRefArDo(b, p, end);
                key = Tlv.valueOf(b, p, end);
                mode = (byte) 2;
            } else {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
        }
        if (mode == (byte) 0) {
            JCSystem.beginTransaction();
            used = (short) 0;
            bumpRefreshTag();
            JCSystem.commitTransaction();
            return;
        }
        // Count first, so that "nothing to delete" changes nothing (6A88).
        boolean found = false;
        for (short r = (short) 0; r < used; r = Tlv.next(rules, r, used)) {
            if (matches(r, b, key, mode)) {
                found = true;
            }
        }
        if (!found) {
            ISOException.throwIt(SW_NOT_FOUND);
        }
        JCSystem.beginTransaction();
        short w = (short) 0;
        short r = (short) 0;
        while (r < used) {
            short n = Tlv.next(rules, r, used);
            if (!matches(r, b, key, mode)) {
                if (w != r) {
                    Util.arrayCopy(rules, r, rules, w, (short) (n - r));
                }
                w = (short) (w + n - r);
            }
            r = n;
        }
        used = w;
        bumpRefreshTag();
        JCSystem.commitTransaction();
    }

    /** Whether the stored rule at r has the AID-REF-DO (mode 1) or the REF-DO (mode 2) at key. */
    private boolean matches(short r, byte[] b, short key, byte mode) {
        short refDo = Tlv.valueOf(rules, r, used);
        if (mode == (byte) 2) {
            return sameTlv(rules, refDo, b, key);
        }
        return sameTlv(rules, (short) (refDo + 2), b, key);
    }

    /** The offset of the stored rule whose REF-DO equals the E1 TLV at b[refDo], or -1. */
    private short find(byte[] b, short refDo) {
        for (short r = (short) 0; r < used; r = Tlv.next(rules, r, used)) {
            if (sameTlv(rules, Tlv.valueOf(rules, r, used), b, refDo)) {
                return r;
            }
        }
        return (short) -1;
    }

    /** Compares two TLVs with short-form lengths (tag, length, value). */
    private static boolean sameTlv(byte[] a, short pa, byte[] b, short pb) {
        if (a[pa] != b[pb] || a[(short) (pa + 1)] != b[(short) (pb + 1)]) {
            return false;
        }
        return Util.arrayCompare(a, pa, b, pb, (short) (2 + (a[(short) (pa + 1)] & 0xFF))) == (byte) 0;
    }

    /** E2 { E1, E3 } at p; returns the offset after it. */
    private static short validateRefArDo(byte[] b, short p, short end) {
        if (b[p] != TAG_REF_AR_DO) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short v = Tlv.valueOf(b, p, end);
        short n = Tlv.next(b, p, end);
        if ((short) (n - p) > MAX_RULE) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short ar = validateRefDo(b, v, n);
        if (ar >= n || b[ar] != TAG_AR_DO || Tlv.next(b, ar, n) != n) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short q = Tlv.valueOf(b, ar, n);
        if (q == n) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        // APDU-AR-DO, NFC-AR-DO, PERM-AR-DO: each at most once, in this order (SEAC Table 6-7 concatenation).
        byte seen = (byte) 0;
        while (q < n) {
            short qv = Tlv.valueOf(b, q, n);
            short l = Tlv.len(b, (short) (q + 1));
            byte tag = b[q];
            byte order = (byte) 0;
            if (tag == TAG_APDU_AR_DO) {
                order = (byte) 1;
                if (l == (short) 1) {
                    if (b[qv] != (byte) 0 && b[qv] != (byte) 1) {
                        ISOException.throwIt(ISO7816.SW_WRONG_DATA);
                    }
                } else if (l == (short) 0 || (short) (l & 7) != (short) 0) {
                    ISOException.throwIt(ISO7816.SW_WRONG_DATA);
                }
            } else if (tag == TAG_NFC_AR_DO) {
                order = (byte) 2;
                if (l != (short) 1 || (b[qv] != (byte) 0 && b[qv] != (byte) 1)) {
                    ISOException.throwIt(ISO7816.SW_WRONG_DATA);
                }
            } else if (tag == TAG_PERM_AR_DO) {
                order = (byte) 3;
                if (l != (short) 8) {
                    ISOException.throwIt(ISO7816.SW_WRONG_DATA);
                }
            } else {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            if (order <= seen) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            seen = order;
            q = (short) (qv + l);
        }
        return n;
    }

    /** E1 { 4F|C0, C1 } at p; returns the offset after it. */
    private static short validateRefDo(byte[] b, short p, short end) {
        if (p >= end || b[p] != TAG_REF_DO) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short v = Tlv.valueOf(b, p, end);
        short n = Tlv.next(b, p, end);
        short h = validateAidRefDo(b, v, n);
        if (h >= n || b[h] != TAG_HASH_REF_DO) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short l = Tlv.len(b, (short) (h + 1));
        if (Tlv.next(b, h, n) != n || (l != (short) 0 && l != (short) 20 && l != (short) 32)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        return n;
    }

    /** 4F (length 0 or 5..16) or C0 (length 0) at p; returns the offset after it. */
    private static short validateAidRefDo(byte[] b, short p, short end) {
        if (p >= end) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short n = Tlv.next(b, p, end);
        short l = Tlv.len(b, (short) (p + 1));
        if (b[p] == TAG_AID_REF_DO) {
            if (l != (short) 0 && (l < (short) 5 || l > (short) 16)) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
        } else if (b[p] != TAG_DEFAULT_AID_REF_DO || l != (short) 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        return n;
    }

    /** Adds 1 to the 8-byte refresh tag (inside the caller's transaction); a pending GET DATA [all] sees the change. */
    private void bumpRefreshTag() {
        for (short i = (short) 7; i >= (short) 0; i--) {
            refreshTag[i] = (byte) (refreshTag[i] + 1);
            if (refreshTag[i] != (byte) 0) {
                break;
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // GET DATA
    // ---------------------------------------------------------------------------------------------------------------

    private void getData(APDU apdu, byte[] buf) {
        short p1p2 = Util.getShort(buf, ISO7816.OFFSET_P1);
        if (p1p2 == P1P2_ALL) {
            // Response-ALL-REF-AR-DO: FF40 L {REF-AR-DO}*; the rest with GET DATA [next].
            pending[1] = (short) (2 + lenFieldSize(used) + used);
            Util.arrayCopyNonAtomic(refreshTag, (short) 0, pendingTag, (short) 0, (short) 8);
            sendNext(apdu, (short) 0);
        } else if (p1p2 == P1P2_NEXT) {
            if (pending[1] == (short) 0) {
                ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
            }
            if (Util.arrayCompare(refreshTag, (short) 0, pendingTag, (short) 0, (short) 8) != (byte) 0) {
                pending[1] = (short) 0;
                pending[0] = (short) 0;
                ISOException.throwIt(SW_RULES_CHANGED);
            }
            sendNext(apdu, pending[0]);
        } else if (p1p2 == P1P2_REFRESH) {
            buf[0] = (byte) 0xDF;
            buf[1] = (byte) 0x20;
            buf[2] = (byte) 8;
            Util.arrayCopyNonAtomic(refreshTag, (short) 0, buf, (short) 3, (short) 8);
            apdu.setOutgoingAndSend((short) 0, (short) 11);
        } else if (p1p2 == P1P2_SPECIFIC) {
            specific(apdu, buf);
        } else {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
    }

    private static short lenFieldSize(short l) {
        return l < (short) 0x80 ? (short) 1 : (l < (short) 0x100 ? (short) 2 : (short) 3);
    }

    /** Sends up to Ne bytes of the GET DATA [all] stream from offset from. */
    private void sendNext(APDU apdu, short from) {
        byte[] buf = apdu.getBuffer();
        short total = pending[1];
        short ne = apdu.setOutgoing();
        if (ne <= (short) 0 || ne > CHUNK) {
            ne = CHUNK;
        }
        short n = (short) (total - from);
        if (n > ne) {
            n = ne;
        }
        // The header FF40 L is written at the end of the buffer's useful area, then the requested slice copied down.
        short hdrLen = (short) (2 + lenFieldSize(used));
        short o = (short) 0;
        short pos = from;
        if (pos < hdrLen) {
            byte[] hdr = buf;
            short h = CHUNK; // scratch past the chunk (the APDU buffer is at least 261 bytes)
            hdr[h] = (byte) 0xFF;
            hdr[(short) (h + 1)] = (byte) 0x40;
            Tlv.putLen(hdr, (short) (h + 2), used);
            while (pos < hdrLen && o < n) {
                buf[o] = hdr[(short) (h + pos)];
                o++;
                pos++;
            }
        }
        if (o < n) {
            Util.arrayCopyNonAtomic(rules, (short) (pos - hdrLen), buf, o, (short) (n - o));
        }
        pending[0] = (short) (from + n);
        if (pending[0] >= total) {
            pending[1] = (short) 0;
            pending[0] = (short) 0;
        }
        apdu.setOutgoingLength(n);
        apdu.sendBytes((short) 0, n);
    }

    /**
     * GET DATA [specific]: data = REF-DO (E1 { 4F|C0, C1 }); answers FF50 L AR-DO. Search order of SEAC 1.1 §3.2.1 as
     * the ACEs implement it: (AID, app); NEVER if the AID has a rule for another specific app; (AID, all apps);
     * (all AIDs, app); NEVER if an all-AID rule names another specific app; (all AIDs, all apps); else FF50 00.
     */
    private void specific(APDU apdu, byte[] buf) {
        short n = apdu.setIncomingAndReceive();
        if (n != apdu.getIncomingLength() || n == (short) 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short q = apdu.getOffsetCdata();
        short end = (short) (q + n);
        if (validateRefDo(buf, q, end) != end) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short qAid = (short) (q + 2);
        short qHash = (short) (qAid + 2 + (buf[(short) (qAid + 1)] & 0xFF));
        boolean qAllAids = buf[qAid] == TAG_AID_REF_DO && buf[(short) (qAid + 1)] == (byte) 0;
        short exact = (short) -1;
        short aidAllApps = (short) -1;
        short allAidsApp = (short) -1;
        short allAidsAllApps = (short) -1;
        boolean aidOtherApp = false;
        boolean allAidsOtherApp = false;
        for (short r = (short) 0; r < used; r = Tlv.next(rules, r, used)) {
            short rAid = (short) (Tlv.valueOf(rules, r, used) + 2);
            short rHash = (short) (rAid + 2 + (rules[(short) (rAid + 1)] & 0xFF));
            boolean allAids = rules[rAid] == TAG_AID_REF_DO && rules[(short) (rAid + 1)] == (byte) 0;
            boolean allApps = rules[(short) (rHash + 1)] == (byte) 0;
            boolean sameApp = sameTlv(rules, rHash, buf, qHash);
            if (!qAllAids && sameTlv(rules, rAid, buf, qAid)) {
                if (sameApp) {
                    exact = r;
                } else if (allApps) {
                    aidAllApps = r;
                } else {
                    aidOtherApp = true;
                }
            } else if (allAids) {
                if (sameApp) {
                    allAidsApp = r;
                } else if (allApps) {
                    allAidsAllApps = r;
                } else {
                    allAidsOtherApp = true;
                }
            }
        }
        short best = exact;
        if (best < (short) 0) {
            if (aidOtherApp) {
                sendNever(apdu, buf);
                return;
            }
            best = aidAllApps;
        }
        if (best < (short) 0) {
            best = allAidsApp;
        }
        if (best < (short) 0) {
            if (allAidsOtherApp) {
                sendNever(apdu, buf);
                return;
            }
            best = allAidsAllApps;
        }
        if (best < (short) 0) {
            // SEAC 1.1 §4.1 Table 4-3: no applicable rule → an empty Response-AR-DO, FF50 00, not an error.
            buf[0] = (byte) 0xFF;
            buf[1] = (byte) 0x50;
            buf[2] = (byte) 0;
            apdu.setOutgoingAndSend((short) 0, (short) 3);
            return;
        }
        short ar = Tlv.next(rules, Tlv.valueOf(rules, best, used), used);
        short arSize = (short) (Tlv.next(rules, ar, used) - ar);
        buf[0] = (byte) 0xFF;
        buf[1] = (byte) 0x50;
        short o = Tlv.putLen(buf, (short) 2, arSize);
        Util.arrayCopyNonAtomic(rules, ar, buf, o, arSize);
        apdu.setOutgoingAndSend((short) 0, (short) (o + arSize));
    }

    /** The NEVER result of the conflict resolution: FF50 08 E3 06 { D0 01 00, D1 01 00 } (APDU and NFC denied). */
    private static void sendNever(APDU apdu, byte[] buf) {
        buf[0] = (byte) 0xFF;
        buf[1] = (byte) 0x50;
        buf[2] = (byte) 8;
        buf[3] = TAG_AR_DO;
        buf[4] = (byte) 6;
        buf[5] = TAG_APDU_AR_DO;
        buf[6] = (byte) 1;
        buf[7] = (byte) 0;
        buf[8] = TAG_NFC_AR_DO;
        buf[9] = (byte) 1;
        buf[10] = (byte) 0;
        apdu.setOutgoingAndSend((short) 0, (short) 11);
    }
}
