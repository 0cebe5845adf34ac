/** A raw WebSocket peer of the stapler (GET /v1/stream), the WebSocket twin of relay-helpers' Client. */
import { WebSocket } from 'ws';
import { StaplerPeer } from './relay-helpers.js';

export class WsClient extends StaplerPeer {
  readonly ws: WebSocket;
  closeCode = 0;

  private constructor(ws: WebSocket) {
    super(true);
    this.ws = ws;
    ws.on('message', (data: Buffer) => {
      if (data.length === 0) this.ended = true; // the relay ended its direction (an empty binary message)
      this.took(data);
    });
    ws.on('close', (code: number) => {
      this.closed = true;
      this.closeCode = code;
      this.notify();
    });
    ws.on('error', () => {});
  }

  static connect(httpPort: number, options: { localAddress?: string; path?: string } = {}): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${httpPort}${options.path ?? '/v1/stream'}`, {
        perMessageDeflate: false,
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      });
      ws.once('open', () => resolve(new WsClient(ws)));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }

  write(data: Uint8Array): void {
    this.ws.send(data, { binary: true });
  }

  /** Bytes as one binary message. */
  send(data: Uint8Array): void {
    this.write(data);
  }

  /** End our direction (the WebSocket's half-close). */
  end(): void {
    this.ws.send(new Uint8Array(0), { binary: true });
  }
}
