/** The File System Access API's directory picker (Chromium), not in TypeScript's DOM library yet. */
interface Window {
  showDirectoryPicker(options?: { mode?: 'read' | 'readwrite' }): Promise<FileSystemDirectoryHandle>;
}
