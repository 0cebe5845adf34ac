/** The File System Access API's directory picker (Chromium), not in TypeScript's DOM library yet. */
interface Window {
  showDirectoryPicker(options?: { mode?: 'read' | 'readwrite' }): Promise<FileSystemDirectoryHandle>;
}

/** WebSocketStream (Chromium 124+; WHATWG draft), not in TypeScript's DOM library yet. */
interface WebSocketStreamOptions {
  protocols?: string[];
  signal?: AbortSignal;
}
interface WebSocketStreamOpened {
  readable: ReadableStream<ArrayBuffer | string>;
  writable: WritableStream<Uint8Array | string>;
  extensions: string;
  protocol: string;
}
interface WebSocketStream {
  readonly url: string;
  readonly opened: Promise<WebSocketStreamOpened>;
  readonly closed: Promise<{ closeCode?: number; reason?: string }>;
  close(info?: { closeCode?: number; reason?: string }): void;
}
declare var WebSocketStream: { prototype: WebSocketStream; new (url: string, options?: WebSocketStreamOptions): WebSocketStream } | undefined;
