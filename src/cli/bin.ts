#!/usr/bin/env node
import { main } from './main.js';

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`moat: internal error: ${String(err)}\n`);
    process.exitCode = 70;
  },
);
