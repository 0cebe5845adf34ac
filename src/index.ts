/**
 * tsc-croc as a library.
 *
 *   import { send, receive, startRelay } from 'tsc-croc';
 *   const relay = await startRelay({ port: 0, tcpPort: 0 });
 *   await send({ relay: relay.httpUrl, files: ['photo.jpg'], onEvent: (e) => e.type === 'code' && console.log(e.code) });
 *   await receive({ relay: relay.httpUrl, code, outDir: 'downloads', accept: (offer) => offer.totalBytes < 1e9 });
 *   for await (const e of receiveEvents({ relay: relay.httpUrl, code, accept: () => true })) console.log(e);
 */
import { iterateEvents, type TransferEvent } from './transfer/events.js';
import { receive, type OverwriteAnswer, type ReceiveOptions, type ReceiveResult } from './transfer/receive.js';
import { send, type SendOptions, type SendResult } from './transfer/send.js';

export { send, receive, type SendOptions, type SendResult, type ReceiveOptions, type ReceiveResult, type OverwriteAnswer };

/** send() as an async generator: `for await (const e of sendEvents(opts))`; its return value is the result. */
export function sendEvents(opts: Omit<SendOptions, 'onEvent'>): AsyncGenerator<TransferEvent, SendResult> {
  return iterateEvents((onEvent) => send({ ...opts, onEvent }));
}

/** receive() as an async generator of its events; its return value is the result. */
export function receiveEvents(opts: Omit<ReceiveOptions, 'onEvent'>): AsyncGenerator<TransferEvent, ReceiveResult> {
  return iterateEvents((onEvent) => receive({ ...opts, onEvent }));
}
export type { TransferEvent, OfferInfo, Stage, EventSink } from './transfer/events.js';
export type { CommittedFile } from './transfer/file-sink.js';
export { startRelay, buildRelay, type RunningRelay, type Relay, type RelayOptions } from './relay/index.js';
export { TscCrocError, isTscCrocError, ERROR_CODES, type ErrorCode } from './core/errors.js';
export { parseCode, formatCode, generateSecret, type CodePhrase } from './core/code-phrase.js';
export { setRecordBufferCollector } from './transfer/secure-channel.js';
export { CURVES, type CurveName } from './core/relay-api.js';
