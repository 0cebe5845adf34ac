/**
 * tsc-croc as a library.
 *
 *   import { send, receive, startRelay } from 'tsc-croc';
 *   const relay = await startRelay({ port: 0, tcpPort: 0 });
 *   await send({ relay: relay.httpUrl, files: ['photo.jpg'], onEvent: (e) => e.type === 'code' && console.log(e.code) });
 *   await receive({ relay: relay.httpUrl, code, outDir: 'downloads', accept: (offer) => offer.totalBytes < 1e9 });
 */
export { send, type SendOptions, type SendResult } from './transfer/send.js';
export { receive, type ReceiveOptions, type ReceiveResult } from './transfer/receive.js';
export type { TransferEvent, OfferInfo, Stage, EventSink } from './transfer/events.js';
export type { CommittedFile } from './transfer/file-sink.js';
export { startRelay, buildRelay, type RunningRelay, type Relay, type RelayOptions } from './relay/index.js';
export { TscCrocError, isTscCrocError, ERROR_CODES, type ErrorCode } from './core/errors.js';
export { parseCode, formatCode, generateSecret, type CodePhrase } from './core/code-phrase.js';
export { CURVES, type CurveName } from './core/relay-api.js';
