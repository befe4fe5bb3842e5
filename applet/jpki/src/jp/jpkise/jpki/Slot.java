/*
 * Everything the JPKI AP keeps per key kind (auth: key EF 0017 + PIN EF 0018; sign: key EF 001A + PIN EF 001B): the
 * RSA-2048 CRT key pair, its modulus, its life-cycle flags, the pending commitment R, the user PIN and the temporary
 * PIN of the smartphone unblock flow. Flags that must change together are written inside one JCSystem transaction by
 * the caller.
 */
package jp.jpkise.jpki;

import javacard.framework.OwnerPIN;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;
import javacard.security.RSAPrivateCrtKey;
import javacard.security.RSAPublicKey;

final class Slot {
    static final byte ABSENT = (byte) 0;
    static final byte PRESENT = (byte) 1;

    /** User PIN state: never set (or erased), blocked behind a temporary PIN, usable. */
    static final byte PIN_NONE = (byte) 0;
    static final byte PIN_TEMP = (byte) 1;
    static final byte PIN_SET = (byte) 2;

    static final short MODULUS_SIZE = (short) 256;
    static final short R_SIZE = (short) 32;
    static final byte TEMP_PIN_SIZE = (byte) 8;
    static final byte TEMP_TRIES = (byte) 3;
    /** IMPORT KEY COMPONENT bits of P, Q, DP1, DQ1, PQ. */
    static final byte ALL_COMPONENTS = (byte) 0x1F;

    /** Low byte of the key EF (0x17 / 0x1A) and of the PIN EF (0x18 / 0x1B). */
    final byte keyFid;
    final byte pinFid;

    final KeyPair pair;
    final RSAPrivateCrtKey priv;
    final RSAPublicKey pub;
    /** Modulus of the key (generated or imported), for the certificate check. */
    final byte[] modulus;
    /** ABSENT until a key pair is generated or all components imported; only PRESENT keys sign. */
    byte keyState;
    /** DISABLE KEY: the key stays but refuses to sign until ERASE. */
    boolean disabled;
    /** Card profile: components imported so far (bit n-1 for component n). */
    byte imported;

    /** GENERATE COMMITMENT: R, pending until GENERATE KEY PAIR consumes it. */
    final byte[] r;
    boolean committed;

    final OwnerPIN pin;
    byte pinState;
    /** The temporary PIN (8 ASCII digits) and its own try counter. */
    final OwnerPIN temp;
    /** The temporary PIN in clear until it is revealed once (then wiped). */
    final byte[] tempDigits;
    boolean revealable;

    Slot(byte keyFid, byte pinFid, byte pinTries, byte pinMax) {
        this.keyFid = keyFid;
        this.pinFid = pinFid;
        pair = new KeyPair(KeyPair.ALG_RSA_CRT, KeyBuilder.LENGTH_RSA_2048);
        priv = (RSAPrivateCrtKey) pair.getPrivate();
        pub = (RSAPublicKey) pair.getPublic();
        modulus = new byte[MODULUS_SIZE];
        r = new byte[R_SIZE];
        pin = new OwnerPIN(pinTries, pinMax);
        temp = new OwnerPIN(TEMP_TRIES, TEMP_PIN_SIZE);
        tempDigits = new byte[TEMP_PIN_SIZE];
    }

    /** ERASE of this kind, inside the caller's transaction: key material, flags, commitment and PIN state. */
    void erase() {
        priv.clearKey();
        pub.clearKey();
        keyState = ABSENT;
        disabled = false;
        imported = (byte) 0;
        committed = false;
        pinState = PIN_NONE;
        revealable = false;
    }

    /** Outside any transaction: wipes the clear temporary PIN and ends the PIN's verification. */
    void forgetSecrets() {
        javacard.framework.Util.arrayFillNonAtomic(tempDigits, (short) 0, TEMP_PIN_SIZE, (byte) 0);
        pin.reset();
    }
}
