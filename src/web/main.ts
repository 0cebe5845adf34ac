import * as core from './core.js';
void core;
