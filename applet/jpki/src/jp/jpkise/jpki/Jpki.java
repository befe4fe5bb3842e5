/*
 * The JPKI AP (公的個人認証AP) of the My Number Card and of the smartphone (GP-SE) token, in Java Card 3.0.5 classic.
 * APDU tables, status words, install parameters and the personalisation protocol: docs/jpki-applet.md. Facts: shared
 * reference jpki.md (OpenSC card-jpki.c, jpki/myna, soltia48/myna-card).
 *
 * Files (FID → content, access): 0001 sign cert (sign password), 0002 sign CA cert, 0006 token info (160 B),
 * 0008 certificate availability (3 B), 000A auth cert (free; auth PIN on the smartphone profile), 000B auth CA cert,
 * 0017 auth private key (auth PIN), 0018 auth PIN (4 digits, 3 tries), 001A sign private key (sign password),
 * 001B sign password (6-16 of [A-Z0-9], 5 tries).
 * A successful VERIFY stays in effect across EF selections until the AP is deselected or reselected, or the card reset.
 * This class is the card interface; the SCP03 personalisation commands are in Perso.
 */
package jp.jpkise.jpki;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.OwnerPIN;
import javacard.framework.Util;
import javacard.security.RandomData;
import javacardx.apdu.ExtendedLength;
import javacardx.crypto.Cipher;

public class Jpki extends Applet implements ExtendedLength {

    // ISO / JPKI commands
    private static final byte INS_SELECT = (byte) 0xA4;
    private static final byte INS_READ_BINARY = (byte) 0xB0;
    private static final byte INS_VERIFY = (byte) 0x20;
    private static final byte INS_CHANGE_REFERENCE_DATA = (byte) 0x24;
    private static final byte INS_RESET_RETRY_COUNTER = (byte) 0x2C;
    private static final byte INS_GET_CHALLENGE = (byte) 0x84;
    private static final byte INS_COMPUTE_SIGNATURE = (byte) 0x2A;
    private static final byte INS_SET_SESSION_KEY = (byte) 0xAE;
    private static final byte INS_REVEAL_TEMPORARY_PIN = (byte) 0xCA;
    // The iPhone token's "last command indicator" (jpki.md §1.3): the plastic card knows it and refuses it with 6700.
    private static final byte INS_LAST_COMMAND = (byte) 0xFC;

    /** Class byte kinds: interindustry, proprietary, proprietary with GP secure messaging; anything else is 6E00. */
    static final byte CLA_ISO = (byte) 0;
    static final byte CLA_PROPRIETARY = (byte) 1;
    static final byte CLA_SECURE = (byte) 2;
    static final byte CLA_BAD = (byte) -1;

    static final short SW_PIN_TRIES = (short) 0x63C0;
    static final short SW_BLOCKED = (short) 0x6984;
    private static final short SW_COMMAND_INCOMPATIBLE = (short) 0x6981;
    static final short SW_REF_NOT_FOUND = (short) 0x6A88;

    static final short CERT_SIZE = (short) 0x0800;
    private static final short TOKEN_INFO_SIZE = (short) 160;
    private static final short TOKEN_NAME_SIZE = (short) 32;
    private static final short MAX_SIGN_INPUT = (short) 245;
    private static final short CHUNK = (short) 256;

    private static final byte AUTH_TRIES = (byte) 3;
    private static final byte SIGN_TRIES = (byte) 5;
    private static final byte MAX_PIN = (byte) 16;

    static final byte PROFILE_CARD = (byte) 0;
    static final byte PROFILE_PHONE = (byte) 1;

    /** Install parameter tags (the C9 value): 80 profile, 81 SE identifier. */
    private static final byte TAG_PROFILE = (byte) 0x80;
    private static final byte TAG_SE_ID = (byte) 0x81;
    static final short SE_ID_SIZE = (short) 16;

    // Indexes into files[]
    static final byte F_SIGN_CERT = (byte) 0;
    static final byte F_SIGN_CA = (byte) 1;
    private static final byte F_TOKEN_INFO = (byte) 2;
    static final byte F_AVAILABILITY = (byte) 3;
    static final byte F_AUTH_CERT = (byte) 4;
    static final byte F_AUTH_CA = (byte) 5;

    // Indexes into slots[]
    static final byte S_AUTH = (byte) 0;
    static final byte S_SIGN = (byte) 1;

    /** "JPKIAPICCTOKEN2" (card) and "JPKIAPGPSETOKEN" (Android GP-SE). */
    private static final byte[] TOKEN_CARD = { (byte) 'J', (byte) 'P', (byte) 'K', (byte) 'I', (byte) 'A', (byte) 'P',
        (byte) 'I', (byte) 'C', (byte) 'C', (byte) 'T', (byte) 'O', (byte) 'K', (byte) 'E', (byte) 'N', (byte) '2' };
    private static final byte[] TOKEN_PHONE = { (byte) 'J', (byte) 'P', (byte) 'K', (byte) 'I', (byte) 'A', (byte) 'P',
        (byte) 'G', (byte) 'P', (byte) 'S', (byte) 'E', (byte) 'T', (byte) 'O', (byte) 'K', (byte) 'E', (byte) 'N' };

    final Ef[] files;
    final Slot[] slots;
    final byte profile;
    final byte[] seId;
    final RandomData random;
    /** CLEAR_ON_DESELECT work area: key-generation response, P·Q, temporary PIN digits. */
    final byte[] scratch;
    private final Cipher rsa;
    /** [0]: index + 1 of the current EF, 0 when none (cleared on deselect). */
    private final byte[] current;
    private final Perso perso;
    /** Card profile: LOCK closes personalisation for good. */
    boolean locked;

    protected Jpki(byte profile, byte[] params, short seIdOffset) {
        this.profile = profile;
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
        Util.arrayFillNonAtomic(files[F_AVAILABILITY].body, (short) 0, (short) 3, (byte) 0);
        slots = new Slot[2];
        slots[S_AUTH] = new Slot((byte) 0x17, (byte) 0x18, AUTH_TRIES, MAX_PIN);
        slots[S_SIGN] = new Slot((byte) 0x1A, (byte) 0x1B, SIGN_TRIES, MAX_PIN);
        rsa = Cipher.getInstance(Cipher.ALG_RSA_PKCS1, false);
        random = RandomData.getInstance(RandomData.ALG_SECURE_RANDOM);
        seId = new byte[SE_ID_SIZE];
        if (params != null) {
            Util.arrayCopyNonAtomic(params, seIdOffset, seId, (short) 0, SE_ID_SIZE);
        } else {
            random.generateData(seId, (short) 0, SE_ID_SIZE);
        }
        current = JCSystem.makeTransientByteArray((short) 1, JCSystem.CLEAR_ON_DESELECT);
        scratch = JCSystem.makeTransientByteArray((short) 512, JCSystem.CLEAR_ON_DESELECT);
        byte[] name = TOKEN_CARD;
        if (profile == PROFILE_PHONE) {
            // The GP-SE token's auth certificate needs the auth PIN (jpki/myna, 2023-07-11).
            name = TOKEN_PHONE;
            files[F_AUTH_CERT].access = Ef.AUTH;
        }
        byte[] info = files[F_TOKEN_INFO].body;
        Util.arrayFillNonAtomic(info, (short) 0, TOKEN_NAME_SIZE, (byte) 0x20);
        Util.arrayCopyNonAtomic(name, (short) 0, info, (short) 0, (short) name.length);
        perso = new Perso(this);
    }

    /**
     * Install parameters (the C9 value, BER-TLV): 80 01 <00 card | 01 phone>, optionally 81 10 <SE identifier>.
     * Absent: card profile and a random SE identifier. Malformed: 6A80 and no instance.
     */
    public static void install(byte[] bArray, short bOffset, byte bLength) {
        short p = (short) (bOffset + 1 + bArray[bOffset]); // control information
        p = (short) (p + 1 + bArray[p]); // application parameters: length, then the C9 value
        short end = (short) (p + 1 + (bArray[p] & 0xFF));
        p++;
        byte profile = PROFILE_CARD;
        short seIdAt = (short) -1;
        while (p < end) {
            if ((short) (p + 2) > end) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            byte tag = bArray[p];
            short len = (short) (bArray[(short) (p + 1)] & 0xFF);
            short value = (short) (p + 2);
            if (len > (short) 0x7F || (short) (value + len) > end) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            if (tag == TAG_PROFILE) {
                if (len != 1 || (bArray[value] != PROFILE_CARD && bArray[value] != PROFILE_PHONE)) {
                    ISOException.throwIt(ISO7816.SW_WRONG_DATA);
                }
                profile = bArray[value];
            } else if (tag == TAG_SE_ID) {
                if (len != SE_ID_SIZE) {
                    ISOException.throwIt(ISO7816.SW_WRONG_DATA);
                }
                seIdAt = value;
            }
            p = (short) (value + len);
        }
        byte[] source = null;
        if (seIdAt >= 0) {
            source = bArray;
        }
        new Jpki(profile, source, seIdAt).register(bArray, (short) (bOffset + 1), bArray[bOffset]);
    }

    public boolean select() {
        slots[S_AUTH].pin.reset();
        slots[S_SIGN].pin.reset();
        current[0] = (byte) 0;
        return true;
    }

    public void deselect() {
        slots[S_AUTH].pin.reset();
        slots[S_SIGN].pin.reset();
        perso.deselect();
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buf = apdu.getBuffer();
        byte cla = claKind(buf[ISO7816.OFFSET_CLA]);
        byte ins = buf[ISO7816.OFFSET_INS];
        if (cla == CLA_BAD) {
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
            case INS_LAST_COMMAND:
                requireCla(cla, CLA_PROPRIETARY);
                ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
                return;
            case INS_RESET_RETRY_COUNTER:
                if (profile == PROFILE_PHONE) {
                    requireCla(cla, CLA_ISO);
                    resetRetryCounter(apdu, buf);
                    return;
                }
                break;
            case INS_REVEAL_TEMPORARY_PIN:
                if (profile == PROFILE_PHONE) {
                    requireCla(cla, CLA_PROPRIETARY);
                    revealTemporaryPin(apdu, buf);
                    return;
                }
                break;
            default:
                break;
        }
        // Personalisation (SCP03) or an unknown INS (6D00).
        perso.process(apdu, buf, cla, ins);
    }

    /**
     * ISO 7816-4 §5.4.1: first interindustry coding (channels 0-3, SM in b4b3, chaining b5) and further coding
     * (channels 4-19, SM in b6). Chaining and other SM codings are not supported.
     */
    static byte claKind(byte cla) {
        boolean proprietary = (cla & (byte) 0x80) != 0;
        boolean sm;
        if ((cla & (byte) 0x40) == 0) {
            if ((cla & (byte) 0x70) != 0) {
                return CLA_BAD;
            }
            byte bits = (byte) (cla & (byte) 0x0C);
            if (bits != 0 && bits != (byte) 0x04) {
                return CLA_BAD;
            }
            sm = bits != 0;
        } else {
            if ((cla & (byte) 0x10) != 0) {
                return CLA_BAD;
            }
            sm = (cla & (byte) 0x20) != 0;
        }
        if (!proprietary) {
            return sm ? CLA_BAD : CLA_ISO;
        }
        return sm ? CLA_SECURE : CLA_PROPRIETARY;
    }

    private static void requireCla(byte cla, byte expected) {
        if (cla != expected) {
            ISOException.throwIt(ISO7816.SW_CLA_NOT_SUPPORTED);
        }
    }

    /** Receives the whole command data (6700 if it does not fit the APDU buffer); the data is at getOffsetCdata(). */
    static short receive(APDU apdu) {
        short len = apdu.setIncomingAndReceive();
        if (len != apdu.getIncomingLength()) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        return len;
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
            return slots[S_AUTH].pin.isValidated();
        }
        if (access == Ef.SIGN) {
            return slots[S_SIGN].pin.isValidated();
        }
        return true;
    }

    /** The slot of a PIN or key EF. */
    private Slot slotOf(Ef ef) {
        if (ef.fid == (short) 0x0017 || ef.fid == (short) 0x0018) {
            return slots[S_AUTH];
        }
        return slots[S_SIGN];
    }

    // SELECT: P1=02 (EF under the AP, by FID, Lc=2); P1=04 reaches the applet only for an AID that is no applet: 6A82.
    private void selectFile(APDU apdu, byte[] buf) {
        byte p1 = buf[ISO7816.OFFSET_P1];
        byte p2 = buf[ISO7816.OFFSET_P2];
        short len = receive(apdu);
        if (p1 == (byte) 0x04) {
            ISOException.throwIt(ISO7816.SW_FILE_NOT_FOUND);
        }
        if (p1 != (byte) 0x02 || (p2 != (byte) 0x0C && p2 != (byte) 0x00)) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (len != 2) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short i = find(Util.getShort(buf, apdu.getOffsetCdata()));
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
        byte[] body = ef.body;
        short size = (short) body.length;
        if (offset >= size) {
            ISOException.throwIt(ISO7816.SW_WRONG_P1P2);
        }
        short le = apdu.setOutgoing();
        short n = (short) (size - offset);
        if (le < n) {
            n = le;
        }
        apdu.setOutgoingLength(n);
        if (!ef.erased) {
            apdu.sendBytesLong(body, offset, n);
            return;
        }
        // An erased EF reads as FF even where its FF fill was cut short.
        while (n > 0) {
            short c = n;
            if (c > CHUNK) {
                c = CHUNK;
            }
            Util.arrayFillNonAtomic(buf, (short) 0, c, (byte) 0xFF);
            apdu.sendBytes((short) 0, c);
            n = (short) (n - c);
        }
    }

    // The PIN commands' common checks: P1 as the command wants (else 6A86), P2 a PIN EF (else 6A88); its slot.
    private Slot pinSlot(byte[] buf, byte p1) {
        if (buf[ISO7816.OFFSET_P1] != p1) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        Ef ef = referenced(buf[ISO7816.OFFSET_P2]);
        if (ef.kind != Ef.PIN) {
            ISOException.throwIt(SW_REF_NOT_FOUND);
        }
        return slotOf(ef);
    }

    // VERIFY: P1=00, P2=80 (current EF) or 80|sfi. No data: 9000 if verified, else 63Cx. 6984 once blocked.
    private void verify(APDU apdu, byte[] buf) {
        Slot slot = pinSlot(buf, (byte) 0);
        OwnerPIN pin = slot.pin;
        short len = receive(apdu);
        // A PIN never set, erased, or waiting behind a temporary PIN behaves as blocked.
        boolean usable = slot.pinState == Slot.PIN_SET;
        if (len == 0) {
            if (usable && pin.isValidated()) {
                return;
            }
            byte left = 0;
            if (usable) {
                left = pin.getTriesRemaining();
            }
            ISOException.throwIt((short) (SW_PIN_TRIES | left));
        }
        if (!usable || pin.getTriesRemaining() == 0) {
            ISOException.throwIt(SW_BLOCKED);
        }
        // An over-long value goes in as MAX_PIN + 1 bytes (no match, a try used): (byte) len is negative from 128 on.
        byte n = (byte) (MAX_PIN + 1);
        if (len <= MAX_PIN) {
            n = (byte) len;
        }
        // OwnerPIN.check decrements the counter durably before comparing and restores it only on a match.
        if (!pin.check(buf, apdu.getOffsetCdata(), n)) {
            ISOException.throwIt((short) (SW_PIN_TRIES | pin.getTriesRemaining()));
        }
    }

    // CHANGE REFERENCE DATA: 00 24 01 80|sfi <new PIN>, after a successful VERIFY of the same PIN.
    private void changeReferenceData(APDU apdu, byte[] buf) {
        Slot slot = pinSlot(buf, (byte) 0x01);
        OwnerPIN pin = slot.pin;
        short len = receive(apdu);
        if (slot.pinState != Slot.PIN_SET || pin.getTriesRemaining() == 0) {
            ISOException.throwIt(SW_BLOCKED);
        }
        if (!pin.isValidated()) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        short off = apdu.getOffsetCdata();
        checkFormat(slot == slots[S_AUTH], buf, off, len);
        pin.update(buf, off, (byte) len);
    }

    /**
     * RESET RETRY COUNTER (phone): 00 2C 00 80|sfi <8-digit temporary PIN ‖ new PIN>. The new PIN's format is checked
     * first (no try used), then OwnerPIN.check decrements the temporary PIN's counter durably before comparing.
     */
    private void resetRetryCounter(APDU apdu, byte[] buf) {
        Slot slot = pinSlot(buf, (byte) 0);
        short len = receive(apdu);
        if (slot.pinState != Slot.PIN_TEMP) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        OwnerPIN temp = slot.temp;
        if (temp.getTriesRemaining() == 0) {
            ISOException.throwIt(SW_BLOCKED);
        }
        short off = apdu.getOffsetCdata();
        if (len <= Slot.TEMP_PIN_SIZE) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short newOff = (short) (off + Slot.TEMP_PIN_SIZE);
        short newLen = (short) (len - Slot.TEMP_PIN_SIZE);
        checkFormat(slot == slots[S_AUTH], buf, newOff, newLen);
        if (!temp.check(buf, off, Slot.TEMP_PIN_SIZE)) {
            byte left = temp.getTriesRemaining();
            if (left == 0) {
                // Dead: only INITIALISE PIN starts a new flow; the clear digits go too.
                slot.revealable = false;
                slot.forgetSecrets();
            }
            ISOException.throwIt((short) (SW_PIN_TRIES | left));
        }
        JCSystem.beginTransaction();
        slot.pin.update(buf, newOff, (byte) newLen);
        slot.pinState = Slot.PIN_SET;
        slot.revealable = false;
        JCSystem.commitTransaction();
        slot.forgetSecrets();
    }

    /** REVEAL TEMPORARY PIN (phone): 80 CA 01 18|1B → the 8 digits, once; they are wiped before the answer leaves. */
    private void revealTemporaryPin(APDU apdu, byte[] buf) {
        if (buf[ISO7816.OFFSET_P1] != (byte) 0x01) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        Slot slot = pinSlot(buf[ISO7816.OFFSET_P2]);
        if (slot.pinState != Slot.PIN_TEMP || !slot.revealable) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        Util.arrayCopyNonAtomic(slot.tempDigits, (short) 0, buf, (short) 0, Slot.TEMP_PIN_SIZE);
        slot.revealable = false;
        Util.arrayFillNonAtomic(slot.tempDigits, (short) 0, Slot.TEMP_PIN_SIZE, (byte) 0);
        apdu.setOutgoingAndSend((short) 0, Slot.TEMP_PIN_SIZE);
    }

    /** P2 = 18 (auth PIN) or 1B (sign password); 6A86 otherwise. */
    Slot pinSlot(byte p2) {
        if (p2 == slots[S_AUTH].pinFid) {
            return slots[S_AUTH];
        }
        if (p2 != slots[S_SIGN].pinFid) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        return slots[S_SIGN];
    }

    /** P2 = 17 (auth key) or 1A (sign key); 6A86 otherwise. */
    Slot keySlot(byte p2) {
        if (p2 == slots[S_AUTH].keyFid) {
            return slots[S_AUTH];
        }
        if (p2 != slots[S_SIGN].keyFid) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        return slots[S_SIGN];
    }

    /** Auth PIN: 4 ASCII digits. Sign password: 6-16 of [A-Z0-9]. 6A80 otherwise. */
    static void checkFormat(boolean auth, byte[] buf, short off, short len) {
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
        if (le > CHUNK) {
            le = CHUNK;
        }
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
        Slot slot = slotOf(ef);
        if (slot.keyState != Slot.PRESENT) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        if (slot.disabled) {
            ISOException.throwIt(SW_BLOCKED);
        }
        if (!granted(ef.access)) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        short len = receive(apdu);
        if (len < 1 || len > MAX_SIGN_INPUT) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        rsa.init(slot.priv, Cipher.MODE_ENCRYPT);
        short n = rsa.doFinal(buf, apdu.getOffsetCdata(), len, buf, (short) 0);
        apdu.setOutgoingAndSend((short) 0, n);
    }
}
