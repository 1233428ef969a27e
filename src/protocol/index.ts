export * from './errors.js';
export * from './framing.js';
export * from './messages.js';
export * from './names.js';
export * from './version.js';
export * from './envelope.js';
