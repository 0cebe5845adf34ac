/** Imported first by the entry point (src/cli/main.ts): see hide-secrets.ts. */
import { hideSecretsFromProcessList } from './hide-secrets.js';

hideSecretsFromProcessList();
