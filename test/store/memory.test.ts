import { describe } from 'vitest';
import { MemoryStore } from '../../src/store/memory.js';
import { storeContract } from './contract.js';

describe('MemoryStore contract', () => {
  storeContract({ open: async () => new MemoryStore() });
});
