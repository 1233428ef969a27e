// Preload (`node --import ./bench/lib/ts-loader.mjs`) registering ts-hooks.mjs.
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
