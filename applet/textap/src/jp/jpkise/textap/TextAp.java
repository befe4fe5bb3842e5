/*
 * The 券面入力補助AP (card-info input support AP, "text AP") of the My Number Card, in Java Card 3.0.5 classic.
 * APDU table, EF layouts, personalisation commands and choices: applet/textap/README.md. Facts: shared reference
 * jpki.md §1.6 (jpki/myna text.rs, soltia48/myna-card ap/text.rs).
 *
 * Files (FID → content, access): 0001 個人番号 (17 B; PIN or 照合番号A), 0002 基本4情報 (512 B; PIN or 照合番号B),
 * 0011 PIN (4 digits, 3 tries), 0012 a reference blocked as issued, 0014 照合番号A (= the 個人番号, 10 tries),
 * 0015 照合番号B (14 digits, 10 tries).
 * A successful VERIFY stays in effect across EF selections until the AP is deselected or reselected, or the card reset.
 * Personalisation runs only in an applet-level SCP03 session through the security domain, and ends for good at LOCK.
 */
package jp.jpkise.textap;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.OwnerPIN;
import javacard.framework.Util;
import org.globalplatform.GPSystem;
import org.globalplatform.SecureChannel;

public class TextAp extends Applet {

    // ISO commands of the card interface (CLA 00)
    private static final byte INS_SELECT = (byte) 0xA4;
    private static final byte INS_READ_BINARY = (byte) 0xB0;
    private static final byte INS_VERIFY = (byte) 0x20;
    private static final byte INS_CHANGE_REFERENCE_DATA = (byte) 0x24;
    // SCP03 through the security domain (GP API 1.6 SecureChannel.processSecurity)
    private static final byte INS_INITIALIZE_UPDATE = (byte) 0x50;
    private static final byte INS_EXTERNAL_AUTHENTICATE = (byte) 0x82;
    // Personalisation (CLA 84 in the session; after LOCK they answer 6D00 as an unknown INS does)
    private static final byte INS_PERSO_WRITE = (byte) 0xE8;
    private static final byte INS_PERSO_SET_REFERENCE = (byte) 0xEA;
    private static final byte INS_PERSO_LOCK = (byte) 0xF4;

    private static final byte CLA_ISO = (byte) 0x00;
    private static final byte CLA_PROPRIETARY = (byte) 0x80;
    private static final byte CLA_PROPRIETARY_SM = (byte) 0x84;

    private static final short SW_TRIES = (short) 0x63C0;
    private static final short SW_BLOCKED = (short) 0x6984;
    private static final short SW_COMMAND_INCOMPATIBLE = (short) 0x6981;
    private static final short SW_REF_NOT_FOUND = (short) 0x6A88;

    // Every FID is 00xx: the low byte names the EF and is its SFI.
    static final byte MY_NUMBER = (byte) 0x01;
    static final byte ATTRIBUTES = (byte) 0x02;
    private static final byte PIN = (byte) 0x11;
    private static final byte BLOCKED = (byte) 0x12;
    private static final byte NUMBER_A = (byte) 0x14;
    private static final byte NUMBER_B = (byte) 0x15;

    private static final short MY_NUMBER_SIZE = (short) 17;
    private static final short ATTRIBUTES_SIZE = (short) 512;
    private static final short PIN_DIGITS = (short) 4;
    private static final short NUMBER_A_DIGITS = (short) 12;
    private static final short NUMBER_B_DIGITS = (short) 14;
    private static final byte PIN_TRIES = (byte) 3;
    private static final byte NUMBER_TRIES = (byte) 10;
    /** Longest candidate passed to OwnerPIN.check: longer than every stored value, so a clipped one never matches. */
    private static final byte MAX_CANDIDATE = (byte) 16;

    private final byte[] myNumber;
    private final byte[] attributes;
    private final OwnerPIN pin;
    private final OwnerPIN numberA;
    private final OwnerPIN numberB;
    private boolean pinSet;
    private boolean numberASet;
    private boolean numberBSet;
    /** False while the issuer personalises; LOCK sets it for good. */
    private boolean locked;
    /** [0]: low FID byte of the current EF, 0 when none (cleared on deselect). */
    private final byte[] current;
    /** WRITE ATTRIBUTES staging: Attributes.HEAD free bytes, then the chunks as received (cleared on deselect). */
    private final byte[] stage;
    /** [0]: next block number expected, [1]: bytes staged. */
    private final short[] staged;

    protected TextAp() {
        myNumber = new byte[MY_NUMBER_SIZE];
        attributes = new byte[ATTRIBUTES_SIZE];
        Util.arrayFillNonAtomic(myNumber, (short) 0, MY_NUMBER_SIZE, (byte) 0xFF);
        Util.arrayFillNonAtomic(attributes, (short) 0, ATTRIBUTES_SIZE, (byte) 0xFF);
        pin = new OwnerPIN(PIN_TRIES, MAX_CANDIDATE);
        numberA = new OwnerPIN(NUMBER_TRIES, MAX_CANDIDATE);
        numberB = new OwnerPIN(NUMBER_TRIES, MAX_CANDIDATE);
        current = JCSystem.makeTransientByteArray((short) 1, JCSystem.CLEAR_ON_DESELECT);
        stage = JCSystem.makeTransientByteArray((short) (Attributes.HEAD + ATTRIBUTES_SIZE), JCSystem.CLEAR_ON_DESELECT);
        staged = JCSystem.makeTransientShortArray((short) 2, JCSystem.CLEAR_ON_DESELECT);
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        new TextAp().register(bArray, (short) (bOffset + 1), bArray[bOffset]);
    }

    public boolean select() {
        clearVerifications();
        current[0] = (byte) 0;
        return true;
    }

    public void deselect() {
        clearVerifications();
        GPSystem.getSecureChannel().resetSecurity();
    }

    private void clearVerifications() {
        pin.reset();
        numberA.reset();
        numberB.reset();
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buf = apdu.getBuffer();
        byte cla = classOf(buf[ISO7816.OFFSET_CLA]);
        byte ins = buf[ISO7816.OFFSET_INS];
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
            default:
                break;
        }
        if (!locked) {
            switch (ins) {
                case INS_INITIALIZE_UPDATE:
                case INS_EXTERNAL_AUTHENTICATE:
                    requireProprietary(cla);
                    short n = GPSystem.getSecureChannel().processSecurity(apdu);
                    apdu.setOutgoingAndSend(ISO7816.OFFSET_CDATA, n);
                    return;
                case INS_PERSO_WRITE:
                case INS_PERSO_SET_REFERENCE:
                case INS_PERSO_LOCK:
                    requireProprietary(cla);
                    personalise(apdu, buf, ins, cla == CLA_PROPRIETARY_SM);
                    return;
                default:
                    break;
            }
        }
        ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
    }

    /** The class byte without its logical channel number; GP's SM indication as 04 in both ISO CLA ranges. */
    private static byte classOf(byte cla) {
        if ((cla & 0x40) == 0) {
            return (byte) (cla & 0xFC);
        }
        byte c = (byte) (cla & 0x90);
        if ((cla & 0x20) != 0) {
            c = (byte) (c | 0x04);
        }
        return c;
    }

    private static void requireCla(byte cla, byte expected) {
        if (cla != expected) {
            ISOException.throwIt(ISO7816.SW_CLA_NOT_SUPPORTED);
        }
    }

    private static void requireProprietary(byte cla) {
        if (cla != CLA_PROPRIETARY && cla != CLA_PROPRIETARY_SM) {
            ISOException.throwIt(ISO7816.SW_CLA_NOT_SUPPORTED);
        }
    }

    private static boolean isEf(byte id) {
        return id == MY_NUMBER || id == ATTRIBUTES || isReference(id);
    }

    private static boolean isReference(byte id) {
        return id == PIN || id == BLOCKED || id == NUMBER_A || id == NUMBER_B;
    }

    /** True when every byte of b[off, off+len) is an ASCII digit. */
    static boolean digits(byte[] b, short off, short len) {
        for (short i = 0; i < len; i++) {
            byte c = b[(short) (off + i)];
            if (c < (byte) '0' || c > (byte) '9') {
                return false;
            }
        }
        return true;
    }

    // SELECT: P1=02 (EF under the AP, by FID, Lc=2); P1=04 reaches the applet only for an AID that is no applet: 6A82.
    private void selectFile(APDU apdu, byte[] buf) {
        byte p1 = buf[ISO7816.OFFSET_P1];
        byte p2 = buf[ISO7816.OFFSET_P2];
        short len = apdu.setIncomingAndReceive();
        if (p1 == (byte) 0x04) {
            ISOException.throwIt(ISO7816.SW_FILE_NOT_FOUND);
        }
        if (p1 != (byte) 0x02 || (p2 != (byte) 0x0C && p2 != (byte) 0x00)) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (len != 2) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        byte id = buf[(short) (ISO7816.OFFSET_CDATA + 1)];
        if (buf[ISO7816.OFFSET_CDATA] != 0 || !isEf(id)) {
            ISOException.throwIt(ISO7816.SW_FILE_NOT_FOUND);
        }
        current[0] = id;
    }

    // READ BINARY: P1P2 = 15-bit offset of the current EF, or P1 = 100sssss (SFI, which becomes current) and P2 = offset.
    private void readBinary(APDU apdu, byte[] buf) {
        byte p1 = buf[ISO7816.OFFSET_P1];
        short offset;
        if ((p1 & 0x80) != 0) {
            if ((p1 & 0x60) != 0) {
                ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
            }
            byte sfi = (byte) (p1 & 0x1F);
            if (!isEf(sfi)) {
                ISOException.throwIt(ISO7816.SW_FILE_NOT_FOUND);
            }
            current[0] = sfi;
            offset = (short) (buf[ISO7816.OFFSET_P2] & 0xFF);
        } else {
            if (current[0] == 0) {
                ISOException.throwIt(ISO7816.SW_COMMAND_NOT_ALLOWED);
            }
            offset = Util.getShort(buf, ISO7816.OFFSET_P1);
        }
        byte id = current[0];
        byte[] body = attributes;
        if (id == MY_NUMBER) {
            if (!pin.isValidated() && !numberA.isValidated()) {
                ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
            }
            body = myNumber;
        } else if (id == ATTRIBUTES) {
            if (!pin.isValidated() && !numberB.isValidated()) {
                ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
            }
        } else {
            ISOException.throwIt(SW_COMMAND_INCOMPATIBLE);
        }
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
        apdu.sendBytesLong(body, offset, n);
    }

    /** The reference named by a P2 of 80 (current EF) or 80|sfi; 6A86 / 6986 / 6A88 otherwise. */
    private byte referenced(byte p2) {
        if ((p2 & 0xE0) != 0x80) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        byte id = (byte) (p2 & 0x1F);
        if (id == 0) {
            if (current[0] == 0) {
                ISOException.throwIt(ISO7816.SW_COMMAND_NOT_ALLOWED);
            }
            id = current[0];
        }
        if (!isReference(id)) {
            ISOException.throwIt(SW_REF_NOT_FOUND);
        }
        return id;
    }

    private OwnerPIN ownerPin(byte id) {
        if (id == PIN) {
            return pin;
        }
        if (id == NUMBER_A) {
            return numberA;
        }
        return numberB;
    }

    private boolean isSet(byte id) {
        if (id == PIN) {
            return pinSet;
        }
        if (id == NUMBER_A) {
            return numberASet;
        }
        return numberBSet;
    }

    // VERIFY: P1=00, P2=80 (current EF) or 80|sfi. No data: 9000 if verified, else 63Cx. 6984 once blocked.
    private void verify(APDU apdu, byte[] buf) {
        if (buf[ISO7816.OFFSET_P1] != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        byte id = referenced(buf[ISO7816.OFFSET_P2]);
        short len = apdu.setIncomingAndReceive();
        if (id == BLOCKED) {
            // Issued blocked (SOL): the query says no tries left, a presentation says blocked.
            if (len == 0) {
                ISOException.throwIt(SW_TRIES);
            }
            ISOException.throwIt(SW_BLOCKED);
        }
        if (!isSet(id)) {
            ISOException.throwIt(SW_BLOCKED);
        }
        OwnerPIN ref = ownerPin(id);
        if (len == 0) {
            if (ref.isValidated()) {
                return;
            }
            ISOException.throwIt((short) (SW_TRIES | ref.getTriesRemaining()));
        }
        if (ref.getTriesRemaining() == 0) {
            ISOException.throwIt(SW_BLOCKED);
        }
        byte n = MAX_CANDIDATE;
        if (len < MAX_CANDIDATE) {
            n = (byte) len;
        }
        // OwnerPIN.check decrements the counter durably before comparing and restores it only on a match.
        if (!ref.check(buf, ISO7816.OFFSET_CDATA, n)) {
            ISOException.throwIt((short) (SW_TRIES | ref.getTriesRemaining()));
        }
    }

    // CHANGE REFERENCE DATA: 00 24 01 80|sfi <new PIN>, the PIN (0011) only, after its VERIFY.
    private void changeReferenceData(APDU apdu, byte[] buf) {
        if (buf[ISO7816.OFFSET_P1] != (byte) 0x01) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        byte id = referenced(buf[ISO7816.OFFSET_P2]);
        short len = apdu.setIncomingAndReceive();
        if (id == BLOCKED) {
            ISOException.throwIt(SW_BLOCKED);
        }
        if (id != PIN) {
            // 照合番号A and B come from what is printed on the card: only the issuer sets them.
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        if (!pinSet || pin.getTriesRemaining() == 0) {
            ISOException.throwIt(SW_BLOCKED);
        }
        if (!pin.isValidated()) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        if (len != PIN_DIGITS || !digits(buf, ISO7816.OFFSET_CDATA, len)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        pin.update(buf, ISO7816.OFFSET_CDATA, (byte) len);
    }

    // ---- personalisation (SCP03 session through the security domain, before LOCK) ----

    /**
     * Unwraps the command (C-MAC, C-DECRYPTION), checks the session level (6982 below it, or without the SM class),
     * runs the command and answers 9000 with an R-MAC when the session has one.
     */
    private void personalise(APDU apdu, byte[] buf, byte ins, boolean wrapped) {
        short len = apdu.setIncomingAndReceive();
        SecureChannel sc = GPSystem.getSecureChannel();
        if (wrapped) {
            len = (short) (sc.unwrap(buf, (short) 0, (short) (ISO7816.OFFSET_CDATA + len)) - ISO7816.OFFSET_CDATA);
        }
        // Every data-carrying command holds personal data or a secret: confidentiality too (README, choices).
        byte needed = SecureChannel.C_MAC;
        if (ins != INS_PERSO_LOCK) {
            needed = (byte) (needed | SecureChannel.C_DECRYPTION);
        }
        byte level = sc.getSecurityLevel();
        if (!wrapped || (level & SecureChannel.AUTHENTICATED) == 0 || (level & needed) != needed) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        if (ins == INS_PERSO_WRITE) {
            write(buf, len);
        } else if (ins == INS_PERSO_SET_REFERENCE) {
            setReference(buf, len);
        } else {
            if (Util.getShort(buf, ISO7816.OFFSET_P1) != 0) {
                ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
            }
            locked = true;
        }
        buf[0] = (byte) 0x90;
        buf[1] = (byte) 0x00;
        short n = sc.wrap(buf, (short) 0, (short) 2);
        if (n > 0) {
            apdu.setOutgoingAndSend((short) 0, n);
        }
    }

    /** 84 E8 <P1> <01|02>: P2 01 = WRITE MY NUMBER, 02 = WRITE ATTRIBUTES (P1 b8 last block, b7..b1 block number). */
    private void write(byte[] buf, short len) {
        byte p1 = buf[ISO7816.OFFSET_P1];
        byte p2 = buf[ISO7816.OFFSET_P2];
        if (p2 == MY_NUMBER) {
            writeMyNumber(buf, p1, len);
        } else if (p2 == ATTRIBUTES) {
            stageAttributes(buf, p1, len);
        } else {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
    }

    /** 12 ASCII digits → EF 0001 = FF10 0C <digits> FF FF and 照合番号A, in one transaction. */
    private void writeMyNumber(byte[] buf, byte p1, short len) {
        if (p1 != (byte) 0x80) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (len != NUMBER_A_DIGITS) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        if (!digits(buf, ISO7816.OFFSET_CDATA, len)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        // The EF image is built after the digits in the APDU buffer.
        short img = (short) (ISO7816.OFFSET_CDATA + NUMBER_A_DIGITS);
        buf[img] = (byte) 0xFF;
        buf[(short) (img + 1)] = (byte) 0x10;
        buf[(short) (img + 2)] = (byte) NUMBER_A_DIGITS;
        Util.arrayCopyNonAtomic(buf, ISO7816.OFFSET_CDATA, buf, (short) (img + 3), NUMBER_A_DIGITS);
        buf[(short) (img + 15)] = (byte) 0xFF;
        buf[(short) (img + 16)] = (byte) 0xFF;
        JCSystem.beginTransaction();
        Util.arrayCopy(buf, img, myNumber, (short) 0, MY_NUMBER_SIZE);
        numberA.update(buf, ISO7816.OFFSET_CDATA, (byte) NUMBER_A_DIGITS);
        numberASet = true;
        JCSystem.commitTransaction();
    }

    /** Stages one chunk of DF22..DF25; the last one builds EF 0002 in one atomic copy. */
    private void stageAttributes(byte[] buf, byte p1, short len) {
        short block = (short) (p1 & 0x7F);
        if (block == 0) {
            staged[0] = (short) 0;
            staged[1] = (short) 0;
        } else if (block != staged[0]) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        short at = staged[1];
        if ((short) (at + len) > ATTRIBUTES_SIZE) {
            staged[0] = (short) 0;
            staged[1] = (short) 0;
            ISOException.throwIt(ISO7816.SW_FILE_FULL);
        }
        Util.arrayCopyNonAtomic(buf, ISO7816.OFFSET_CDATA, stage, (short) (Attributes.HEAD + at), len);
        staged[0] = (short) (block + 1);
        staged[1] = (short) (at + len);
        if ((p1 & 0x80) != 0) {
            short n = staged[1];
            staged[0] = (short) 0;
            staged[1] = (short) 0;
            Attributes.build(stage, n, attributes);
        }
    }

    /** 84 EA 00 <11|15> <value>: the PIN (4 digits) or 照合番号B (14 digits), with a full try counter. */
    private void setReference(byte[] buf, short len) {
        byte p2 = buf[ISO7816.OFFSET_P2];
        if (buf[ISO7816.OFFSET_P1] != 0 || (p2 != PIN && p2 != NUMBER_B)) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        short digitsNeeded = NUMBER_B_DIGITS;
        if (p2 == PIN) {
            digitsNeeded = PIN_DIGITS;
        }
        if (len != digitsNeeded || !digits(buf, ISO7816.OFFSET_CDATA, len)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        JCSystem.beginTransaction();
        if (p2 == PIN) {
            pin.update(buf, ISO7816.OFFSET_CDATA, (byte) len);
            pinSet = true;
        } else {
            numberB.update(buf, ISO7816.OFFSET_CDATA, (byte) len);
            numberBSet = true;
        }
        JCSystem.commitTransaction();
    }
}
