/**
 * Every src/core module the browser uses, in one entry: test/web.bundle.test.ts bundles it for
 * the browser and checks that nothing from node comes along (no `node:` import, no Buffer).
 */
export * as codePhrase from '../core/code-phrase.js';
export * as chunkDigest from '../core/chunk-digest.js';
export * as errors from '../core/errors.js';
export * as handshake from '../core/handshake.js';
export * as keySchedule from '../core/key-schedule.js';
export * as messages from '../core/messages.js';
export * as password from '../core/password.js';
export * as path from '../core/path.js';
export * as recipientMachine from '../core/recipient-machine.js';
export * as senderMachine from '../core/sender-machine.js';
export * as recordWeb from '../core/record-web.js';
export { CURVES, RELAY_PROTOCOL_VERSION, isTcpReply, type ChannelState, type JoinResponse } from '../core/relay-api.js';
export * as spake2 from '../core/spake2.js';
