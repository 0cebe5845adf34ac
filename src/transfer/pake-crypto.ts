/**
 * The key agreement's arithmetic (SPAKE2 on noble's curves, the key schedule), as one module that
 * pake.ts loads on first use: a sender shows its code before paying for it (it has the wait for
 * the recipient to do that in), and a recipient loads it while its join is under way.
 */
export { recipientRespond, senderStart } from '../core/handshake.js';
