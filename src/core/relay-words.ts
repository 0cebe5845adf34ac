/**
 * The words of relay refusals and closed channels, shared by the CLI's relay client
 * (src/transfer/relay-client.ts) and the browser page, so that both say the same thing. Pure.
 */
import { TscCrocError } from './errors.js';
import type { CloseReason, Role } from './relay-api.js';

/**
 * The error of a channel that closed while `role` waited on it. A recipient reads a channel as
 * closed also when the relay took its seat away before the key agreement completed: 'wrong-code'
 * (the sender rejected its confirmation) or 'expired' (it did not answer in time).
 */
export function closedError(reason: CloseReason | null, role: Role = 'sender'): TscCrocError {
  switch (reason) {
    case 'wrong-code':
      return new TscCrocError('ERR_WRONG_CODE', 'the code is wrong: the other side could not confirm the key');
    case 'cancelled':
      return new TscCrocError('ERR_CANCELLED', 'the other side cancelled');
    case 'expired':
      if (role === 'recipient') return new TscCrocError('ERR_TIMEOUT', 'the channel expired before the key agreement finished: ask the sender for a new code');
      return new TscCrocError('ERR_TIMEOUT', "the code expired: nobody used it within the relay's time limit");
    default:
      return new TscCrocError('ERR_CHANNEL_CLOSED', 'the other side closed the channel');
  }
}

/** Relay refusals with their own advice, shared by the HTTP and the TCP side; null for others. */
export function knownRefusal(code: string): TscCrocError | null {
  switch (code) {
    case 'ERR_CHANNEL_NOT_FOUND':
      return new TscCrocError('ERR_CHANNEL_NOT_FOUND', 'no sender is waiting on that channel: check the code, and that both sides use the same relay');
    case 'ERR_CHANNEL_OCCUPIED':
      return new TscCrocError('ERR_CHANNEL_FULL', 'that channel is already in use: choose another code');
    case 'ERR_CHANNEL_FULL':
      return new TscCrocError('ERR_CHANNEL_FULL', 'someone else joined this channel first: if that was not you, the code may have been seen');
    case 'ERR_CHANNEL_CLOSED':
      return new TscCrocError('ERR_CHANNEL_CLOSED', 'that channel is closed: ask the sender for a new code');
    case 'ERR_UNAUTHORIZED':
      return new TscCrocError('ERR_RELAY', 'the relay needs a password, or refused the one given (set TSC_CROC_RELAY_PASSWORD)');
    case 'ERR_RATE_LIMITED':
      return new TscCrocError('ERR_RELAY', 'the relay is limiting requests from this address: try again in a minute');
    case 'ERR_SHUTTING_DOWN':
      return new TscCrocError('ERR_RELAY_UNREACHABLE', 'the relay is shutting down: try again later');
    case 'ERR_STORE_UNAVAILABLE':
      return new TscCrocError('ERR_RELAY_UNREACHABLE', 'the relay cannot reach its channel store (its operator\'s Redis) right now: try again in a moment');
    case 'ERR_TOO_MANY_CHANNELS':
    case 'ERR_TOO_MANY_CONNECTIONS':
      return new TscCrocError('ERR_RELAY', 'the relay is full: try again later');
    default:
      return null;
  }
}
