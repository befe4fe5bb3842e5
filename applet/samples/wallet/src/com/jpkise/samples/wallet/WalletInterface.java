/*
 * The wallet's Shareable interface (JCRE 3.0.5 section 6.2.4): the methods other packages may call across the
 * firewall once the wallet hands them its Shareable interface object.
 */
package com.jpkise.samples.wallet;

import javacard.framework.Shareable;

public interface WalletInterface extends Shareable {

    /**
     * Takes amount from the balance and returns the new balance. Throws ISOException 6A80 when amount is not positive,
     * 6985 when the balance is too low.
     */
    short debit(short amount);

    /** The current balance. */
    short balance();
}
