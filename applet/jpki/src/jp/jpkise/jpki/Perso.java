/*
 * Personalisation of the JPKI AP under an applet-level SCP03 session (GP API 1.6 SecureChannel, keys of the applet's
 * security domain: the ISD for the card profile, the JPKI APSD for the phone profile). Protocol, security levels and
 * status words: docs/jpki-applet.md "Personalisation".
 *
 * Every command here needs CLA 84 (GP secure messaging, channel bits allowed) inside an authenticated session with at
 * least C-MAC (C-DECRYPTION for IMPORT KEY COMPONENT and SET PIN); otherwise 6982 and the session ends. 9000 answers
 * go through SecureChannel.wrap, so they carry R-MAC / R-ENC when the session has them. Card profile after LOCK: 6D00.
 */
package jp.jpkise.jpki;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.MessageDigest;
import org.globalplatform.GPSystem;
import org.globalplatform.SecureChannel;

final class Perso {
    private static final byte INS_INITIALIZE_UPDATE = (byte) 0x50;
    private static final byte INS_EXTERNAL_AUTHENTICATE = (byte) 0x82;
    private static final byte INS_GET_SE_ID = (byte) 0xE0;
    private static final byte INS_COMMIT = (byte) 0xE2;
    private static final byte INS_GENERATE_KEY_PAIR = (byte) 0xE4;
    private static final byte INS_IMPORT_KEY = (byte) 0xE6;
    private static final byte INS_WRITE_CERTIFICATE = (byte) 0xE8;
    private static final byte INS_SET_PIN = (byte) 0xEA;
    private static final byte INS_SET_TEMPORARY_PIN = (byte) 0xEC;
    private static final byte INS_INITIALISE_PIN = (byte) 0xEE;
    private static final byte INS_ERASE = (byte) 0xF0;
    private static final byte INS_DISABLE_KEY = (byte) 0xF2;
    private static final byte INS_LOCK = (byte) 0xF4;

    /** Required session level bits (SecureChannel.AUTHENTICATED | C_MAC, plus C_DECRYPTION for secrets). */
    private static final byte LEVEL_MAC = (byte) 0x81;
    private static final byte LEVEL_DEC = (byte) 0x83;

    private static final short KEY_PART = (short) 128;
    private static final byte AVAILABLE = (byte) 0x8F;
    /** Offsets in Jpki.scratch: P and Q (128 each), their product (256); the key-generation response from 0. */
    private static final short S_Q = (short) 128;
    private static final short S_PRODUCT = (short) 256;
    private static final short S_END = (short) 512;

    private final Jpki app;
    private final MessageDigest sha;
    /** Staging buffer of WRITE CERTIFICATE; after the commit it becomes the EF body and the old body the next buffer. */
    private byte[] staging;
    /** [0] EF index + 1 being staged (0 none), [1] next block number, [2] bytes staged. */
    private final short[] stage;

    Perso(Jpki app) {
        this.app = app;
        sha = MessageDigest.getInstance(MessageDigest.ALG_SHA_256, false);
        staging = new byte[Jpki.CERT_SIZE];
        stage = JCSystem.makeTransientShortArray((short) 3, JCSystem.CLEAR_ON_DESELECT);
    }

    void deselect() {
        GPSystem.getSecureChannel().resetSecurity();
    }

    /** Is `ins` a personalisation command of this profile in this state? */
    private boolean offered(byte ins) {
        if (app.locked) {
            return false;
        }
        boolean phone = app.profile == Jpki.PROFILE_PHONE;
        switch (ins) {
            case INS_INITIALIZE_UPDATE:
            case INS_EXTERNAL_AUTHENTICATE:
            case INS_GET_SE_ID:
            case INS_WRITE_CERTIFICATE:
            case INS_ERASE:
            case INS_DISABLE_KEY:
                return true;
            case INS_COMMIT:
            case INS_GENERATE_KEY_PAIR:
            case INS_SET_TEMPORARY_PIN:
            case INS_INITIALISE_PIN:
                return phone;
            case INS_IMPORT_KEY:
            case INS_SET_PIN:
            case INS_LOCK:
                return !phone;
            default:
                return false;
        }
    }

    void process(APDU apdu, byte[] buf, byte cla, byte ins) {
        if (!offered(ins)) {
            ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
        if (cla == Jpki.CLA_ISO) {
            ISOException.throwIt(ISO7816.SW_CLA_NOT_SUPPORTED);
        }
        SecureChannel sc = GPSystem.getSecureChannel();
        if (ins == INS_INITIALIZE_UPDATE || ins == INS_EXTERNAL_AUTHENTICATE) {
            short n = sc.processSecurity(apdu);
            apdu.setOutgoingAndSend(ISO7816.OFFSET_CDATA, n);
            return;
        }
        byte need = LEVEL_MAC;
        if (ins == INS_IMPORT_KEY || ins == INS_SET_PIN) {
            need = LEVEL_DEC;
        }
        if (cla != Jpki.CLA_SECURE || (byte) (sc.getSecurityLevel() & need) != need) {
            // Amd D §5.6: a command below the session's requirements ends the session.
            sc.resetSecurity();
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        short len = Jpki.receive(apdu);
        short total = sc.unwrap(buf, (short) 0, (short) (apdu.getOffsetCdata() + len));
        // The unwrapped command: header with a short Lc (5 bytes) or an extended one (7 bytes), then the plain data.
        short off = ISO7816.OFFSET_CDATA;
        if (total > ISO7816.OFFSET_CDATA && buf[ISO7816.OFFSET_LC] == 0) {
            off = (short) 7;
        }
        len = (short) (total - off);
        switch (ins) {
            case INS_GET_SE_ID:
                getSeId(apdu, buf);
                return;
            case INS_COMMIT:
                commit(apdu, buf);
                return;
            case INS_GENERATE_KEY_PAIR:
                generateKeyPair(apdu, buf);
                return;
            case INS_IMPORT_KEY:
                importKey(apdu, buf, off, len);
                return;
            case INS_WRITE_CERTIFICATE:
                writeCertificate(apdu, buf, off, len);
                return;
            case INS_SET_PIN:
                setPin(apdu, buf, off, len);
                return;
            case INS_SET_TEMPORARY_PIN:
                setTemporaryPin(apdu, app.pinSlot(buf[ISO7816.OFFSET_P2]), buf);
                return;
            case INS_INITIALISE_PIN:
                initialisePin(apdu, buf, off, len);
                return;
            case INS_ERASE:
                erase(apdu, buf);
                return;
            case INS_DISABLE_KEY:
                disableKey(apdu, buf);
                return;
            case INS_LOCK:
                lock(apdu, buf);
                return;
            default:
                ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
    }

    /** 9000 with `len` bytes of `out` as data, through SecureChannel.wrap (R-MAC / R-ENC when the session has them). */
    private void respond(APDU apdu, byte[] out, short len) {
        out[len] = (byte) 0x90;
        out[(short) (len + 1)] = (byte) 0x00;
        short n = GPSystem.getSecureChannel().wrap(out, (short) 0, (short) (len + 2));
        if (out == apdu.getBuffer()) {
            apdu.setOutgoingAndSend((short) 0, n);
            return;
        }
        apdu.setOutgoing();
        apdu.setOutgoingLength(n);
        apdu.sendBytesLong(out, (short) 0, n);
    }

    private static void requireP1(byte[] buf, byte p1) {
        if (buf[ISO7816.OFFSET_P1] != p1) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
    }

    /** GET SE IDENTIFIER 84 E0 00 00: the 16-byte SE identifier. */
    private void getSeId(APDU apdu, byte[] buf) {
        if (Util.getShort(buf, ISO7816.OFFSET_P1) != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        Util.arrayCopyNonAtomic(app.seId, (short) 0, buf, (short) 0, Jpki.SE_ID_SIZE);
        respond(apdu, buf, Jpki.SE_ID_SIZE);
    }

    /** GENERATE COMMITMENT 84 E2 00 17|1A: a new R (32 random bytes) for that kind; answers S = SHA-256(R). */
    private void commit(APDU apdu, byte[] buf) {
        requireP1(buf, (byte) 0);
        Slot slot = app.keySlot(buf[ISO7816.OFFSET_P2]);
        byte[] s = app.scratch;
        app.random.generateData(s, (short) 0, Slot.R_SIZE);
        JCSystem.beginTransaction();
        Util.arrayCopy(s, (short) 0, slot.r, (short) 0, Slot.R_SIZE);
        slot.committed = true;
        JCSystem.commitTransaction();
        Util.arrayFillNonAtomic(s, (short) 0, Slot.R_SIZE, (byte) 0);
        sha.doFinal(slot.r, (short) 0, Slot.R_SIZE, buf, (short) 0);
        respond(apdu, buf, Slot.R_SIZE);
    }

    /**
     * GENERATE KEY PAIR 84 E4 00 17|1A: RSA-2048 CRT on chip (KeyPair.genKeyPair), in one transaction with consuming R
     * and marking the key present, so a power cut leaves either no key (R still pending) or the whole key. Answers
     * 7F49 { 81 <modulus>, 82 <exponent> } 9F36 20 <R>; the private key never leaves.
     */
    private void generateKeyPair(APDU apdu, byte[] buf) {
        requireP1(buf, (byte) 0);
        Slot slot = app.keySlot(buf[ISO7816.OFFSET_P2]);
        if (!slot.committed || slot.keyState != Slot.ABSENT) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        byte[] out = app.scratch;
        // 7F49 82 LL LL | 81 82 01 00 <modulus> | 82 <e length> <e> | 9F36 20 <R>
        short mod = (short) 9;
        JCSystem.beginTransaction();
        slot.pair.genKeyPair();
        short n = slot.pub.getModulus(out, mod);
        if (n != Slot.MODULUS_SIZE) {
            JCSystem.abortTransaction();
            ISOException.throwIt(ISO7816.SW_UNKNOWN);
        }
        Util.arrayCopy(out, mod, slot.modulus, (short) 0, Slot.MODULUS_SIZE);
        slot.committed = false;
        slot.disabled = false;
        slot.keyState = Slot.PRESENT;
        JCSystem.commitTransaction();
        short p = (short) (mod + Slot.MODULUS_SIZE);
        out[p] = (byte) 0x82;
        short e = slot.pub.getExponent(out, (short) (p + 2));
        out[(short) (p + 1)] = (byte) e;
        p = (short) (p + 2 + e);
        short inner = (short) (p - 5);
        out[0] = (byte) 0x7F;
        out[1] = (byte) 0x49;
        out[2] = (byte) 0x82;
        Util.setShort(out, (short) 3, inner);
        out[5] = (byte) 0x81;
        out[6] = (byte) 0x82;
        Util.setShort(out, (short) 7, Slot.MODULUS_SIZE);
        out[p] = (byte) 0x9F;
        out[(short) (p + 1)] = (byte) 0x36;
        out[(short) (p + 2)] = (byte) Slot.R_SIZE;
        Util.arrayCopyNonAtomic(slot.r, (short) 0, out, (short) (p + 3), Slot.R_SIZE);
        respond(apdu, out, (short) (p + 3 + Slot.R_SIZE));
    }

    /**
     * IMPORT KEY COMPONENT 84 E6 <01 P | 02 Q | 03 DP1 | 04 DQ1 | 05 PQ> 17|1A <128 bytes> (card, C-DEC). When the last
     * component is in, the modulus P·Q is computed on card and the key becomes present (one transaction).
     */
    private void importKey(APDU apdu, byte[] buf, short off, short len) {
        Slot slot = app.keySlot(buf[ISO7816.OFFSET_P2]);
        if (len != KEY_PART) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        if (slot.keyState != Slot.ABSENT) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        byte component = buf[ISO7816.OFFSET_P1];
        switch (component) {
            case 1:
                slot.priv.setP(buf, off, len);
                break;
            case 2:
                slot.priv.setQ(buf, off, len);
                break;
            case 3:
                slot.priv.setDP1(buf, off, len);
                break;
            case 4:
                slot.priv.setDQ1(buf, off, len);
                break;
            case 5:
                slot.priv.setPQ(buf, off, len);
                break;
            default:
                ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        Util.arrayFillNonAtomic(buf, off, len, (byte) 0);
        slot.imported = (byte) (slot.imported | (1 << (short) (component - 1)));
        if (slot.imported == Slot.ALL_COMPONENTS) {
            byte[] s = app.scratch;
            Util.arrayFillNonAtomic(s, (short) 0, S_END, (byte) 0);
            short pl = slot.priv.getP(s, (short) 0);
            short ql = slot.priv.getQ(s, S_Q);
            short at = (short) (S_END - pl - ql);
            if (at < S_PRODUCT) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            multiply(s, (short) 0, pl, s, S_Q, ql, s, at);
            JCSystem.beginTransaction();
            Util.arrayCopy(s, S_PRODUCT, slot.modulus, (short) 0, Slot.MODULUS_SIZE);
            slot.disabled = false;
            slot.keyState = Slot.PRESENT;
            JCSystem.commitTransaction();
            Util.arrayFillNonAtomic(s, (short) 0, S_END, (byte) 0);
        }
        respond(apdu, buf, (short) 0);
    }

    /**
     * r[rOff, rOff + aLen + bLen) = a · b, big-endian bytes, schoolbook; r must be zero. Every step is the same work
     * whatever the bytes (no early exits), since a and b are the secret primes.
     */
    static void multiply(byte[] a, short aOff, short aLen, byte[] b, short bOff, short bLen, byte[] r, short rOff) {
        for (short i = (short) (aLen - 1); i >= 0; i--) {
            short ai = (short) (a[(short) (aOff + i)] & 0xFF);
            short carry = 0;
            for (short j = (short) (bLen - 1); j >= 0; j--) {
                short k = (short) (rOff + i + j + 1);
                // At most 255·255 + 255 + 255 = 65535: exact in 16 bits read as unsigned.
                short t = (short) (ai * (short) (b[(short) (bOff + j)] & 0xFF) + (short) (r[k] & 0xFF) + carry);
                r[k] = (byte) t;
                carry = (short) ((t >> 8) & 0xFF);
            }
            r[(short) (rOff + i)] = (byte) carry;
        }
    }

    /**
     * WRITE CERTIFICATE 84 E8 <b8 last | block> <01|02|0A|0B> <chunk>. Chunks are staged in order; the last block checks
     * the DER header (30 82 LL LL, 4 + LL bytes in all), for 01/0A that the certificate holds the key's modulus, then
     * one transaction swaps the staging buffer in as the EF body and sets the availability byte.
     */
    private void writeCertificate(APDU apdu, byte[] buf, short off, short len) {
        byte p1 = buf[ISO7816.OFFSET_P1];
        byte p2 = buf[ISO7816.OFFSET_P2];
        short block = (short) (p1 & 0x7F);
        boolean last = (p1 & (byte) 0x80) != 0;
        short index = certIndex(p2);
        if (block == 0) {
            stage[0] = (short) (index + 1);
            stage[1] = 0;
            stage[2] = 0;
        }
        if (stage[0] != (short) (index + 1) || stage[1] != block) {
            clearStage();
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        short have = stage[2];
        if (len == 0 || len > (short) (Jpki.CERT_SIZE - have)) {
            clearStage();
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        Util.arrayCopyNonAtomic(buf, off, staging, have, len);
        stage[1] = (short) (block + 1);
        stage[2] = (short) (have + len);
        if (!last) {
            respond(apdu, buf, (short) 0);
            return;
        }
        short total = stage[2];
        clearStage();
        byte[] der = staging;
        if (total < 4 || der[0] != (byte) 0x30 || der[1] != (byte) 0x82 || Util.getShort(der, (short) 2) != (short) (total - 4)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short avail = (short) -1;
        Slot slot = null;
        if (index == Jpki.F_SIGN_CERT) {
            avail = 0;
            slot = app.slots[Jpki.S_SIGN];
        } else if (index == Jpki.F_AUTH_CERT) {
            avail = 1;
            slot = app.slots[Jpki.S_AUTH];
        }
        if (slot != null) {
            if (slot.keyState != Slot.PRESENT) {
                ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
            }
            if (!contains(der, total, slot.modulus)) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
        }
        Util.arrayFillNonAtomic(der, total, (short) (Jpki.CERT_SIZE - total), (byte) 0xFF);
        Ef ef = app.files[index];
        JCSystem.beginTransaction();
        staging = ef.body;
        ef.body = der;
        ef.erased = false;
        if (avail >= 0) {
            app.files[Jpki.F_AVAILABILITY].body[avail] = AVAILABLE;
        }
        JCSystem.commitTransaction();
        respond(apdu, buf, (short) 0);
    }

    private void clearStage() {
        stage[0] = 0;
        stage[1] = 0;
        stage[2] = 0;
    }

    /** P2 01 / 02 / 0A / 0B → index into files[]; 6A86 otherwise. */
    private short certIndex(byte p2) {
        switch (p2) {
            case 0x01:
                return Jpki.F_SIGN_CERT;
            case 0x02:
                return Jpki.F_SIGN_CA;
            case 0x0A:
                return Jpki.F_AUTH_CERT;
            case 0x0B:
                return Jpki.F_AUTH_CA;
            default:
                clearStage();
                ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
                return 0;
        }
    }

    /** Does data[0, len) contain the 256-byte modulus? */
    private static boolean contains(byte[] data, short len, byte[] modulus) {
        short last = (short) (len - Slot.MODULUS_SIZE);
        for (short i = 0; i <= last; i++) {
            if (data[i] == modulus[0] && Util.arrayCompare(data, i, modulus, (short) 0, Slot.MODULUS_SIZE) == 0) {
                return true;
            }
        }
        return false;
    }

    /** SET PIN 84 EA 00 18|1B <PIN> (card, C-DEC): format checked, PIN set with a full counter. */
    private void setPin(APDU apdu, byte[] buf, short off, short len) {
        requireP1(buf, (byte) 0);
        Slot slot = app.pinSlot(buf[ISO7816.OFFSET_P2]);
        Jpki.checkFormat(slot == app.slots[Jpki.S_AUTH], buf, off, len);
        JCSystem.beginTransaction();
        slot.pin.update(buf, off, (byte) len);
        slot.pinState = Slot.PIN_SET;
        JCSystem.commitTransaction();
        Util.arrayFillNonAtomic(buf, off, len, (byte) 0);
        respond(apdu, buf, (short) 0);
    }

    /**
     * SET TEMPORARY PIN 84 EC 00 18|1B (phone): the SE draws 8 ASCII digits, stores them for one REVEAL and as the
     * temporary PIN (full 3-try counter); the user PIN waits behind it. Nothing is returned.
     */
    private void setTemporaryPin(APDU apdu, Slot slot, byte[] buf) {
        requireP1(buf, (byte) 0);
        byte[] s = app.scratch;
        short have = 0;
        while (have < Slot.TEMP_PIN_SIZE) {
            app.random.generateData(s, (short) 16, (short) 16);
            for (short j = 16; j < (short) 32 && have < Slot.TEMP_PIN_SIZE; j++) {
                short v = (short) (s[j] & 0xFF);
                // 250 = 25 · 10: rejecting 250-255 keeps every digit equally likely.
                if (v < (short) 250) {
                    s[have] = (byte) ('0' + (byte) (v % 10));
                    have++;
                }
            }
        }
        JCSystem.beginTransaction();
        Util.arrayCopy(s, (short) 0, slot.tempDigits, (short) 0, Slot.TEMP_PIN_SIZE);
        slot.temp.update(s, (short) 0, Slot.TEMP_PIN_SIZE);
        slot.revealable = true;
        slot.pinState = Slot.PIN_TEMP;
        JCSystem.commitTransaction();
        Util.arrayFillNonAtomic(s, (short) 0, (short) 32, (byte) 0);
        slot.pin.reset();
        respond(apdu, buf, (short) 0);
    }

    /** INITIALISE PIN 84 EE 00 18|1B <SE identifier> (phone): 6A80 unless it is this SE's; then SET TEMPORARY PIN. */
    private void initialisePin(APDU apdu, byte[] buf, short off, short len) {
        requireP1(buf, (byte) 0);
        Slot slot = app.pinSlot(buf[ISO7816.OFFSET_P2]);
        if (len != Jpki.SE_ID_SIZE || Util.arrayCompare(buf, off, app.seId, (short) 0, Jpki.SE_ID_SIZE) != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        setTemporaryPin(apdu, slot, buf);
    }

    /**
     * ERASE 84 F0 00 17|1A|00: one transaction clears the key(s), marks them absent, unsets the PIN(s), marks the
     * certificate EF(s) erased (00: the CA EFs too) and zeroes their availability byte(s); the FF fill follows.
     */
    private void erase(APDU apdu, byte[] buf) {
        requireP1(buf, (byte) 0);
        byte p2 = buf[ISO7816.OFFSET_P2];
        boolean all = p2 == 0;
        boolean auth = all;
        boolean sign = all;
        if (!all) {
            Slot slot = app.keySlot(p2);
            auth = slot == app.slots[Jpki.S_AUTH];
            sign = !auth;
        }
        Ef[] files = app.files;
        byte[] avail = files[Jpki.F_AVAILABILITY].body;
        JCSystem.beginTransaction();
        if (auth) {
            app.slots[Jpki.S_AUTH].erase();
            files[Jpki.F_AUTH_CERT].erased = true;
            avail[1] = 0;
        }
        if (sign) {
            app.slots[Jpki.S_SIGN].erase();
            files[Jpki.F_SIGN_CERT].erased = true;
            avail[0] = 0;
        }
        if (all) {
            files[Jpki.F_SIGN_CA].erased = true;
            files[Jpki.F_AUTH_CA].erased = true;
            avail[2] = 0;
        }
        JCSystem.commitTransaction();
        // The EFs already read as FF; the fill only removes the old bytes from memory.
        for (short i = Jpki.F_SIGN_CERT; i <= Jpki.F_AUTH_CA; i++) {
            Ef ef = files[i];
            if (ef.erased) {
                Util.arrayFillNonAtomic(ef.body, (short) 0, (short) ef.body.length, (byte) 0xFF);
            }
        }
        if (auth) {
            app.slots[Jpki.S_AUTH].forgetSecrets();
        }
        if (sign) {
            app.slots[Jpki.S_SIGN].forgetSecrets();
        }
        respond(apdu, buf, (short) 0);
    }

    /** DISABLE KEY 84 F2 00 17|1A: the key refuses to sign (6984) until ERASE and a new key. 6985 when no key. */
    private void disableKey(APDU apdu, byte[] buf) {
        requireP1(buf, (byte) 0);
        Slot slot = app.keySlot(buf[ISO7816.OFFSET_P2]);
        if (slot.keyState != Slot.PRESENT) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        slot.disabled = true;
        respond(apdu, buf, (short) 0);
    }

    /** LOCK 84 F4 00 00 (card): personalisation closed for good; its commands answer 6D00 from now on. */
    private void lock(APDU apdu, byte[] buf) {
        if (Util.getShort(buf, ISO7816.OFFSET_P1) != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        app.locked = true;
        respond(apdu, buf, (short) 0);
    }
}
