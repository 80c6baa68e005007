// Preloaded (node --require) into a process that stands for the container image, whose
// `npm ci --omit=dev` installs neither TypeScript nor ts-node: loading either fails at once, as it would there.
'use strict';
const Module = require('node:module');

const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (/^(typescript|ts-node)(\/|$)/.test(request)) {
    throw new Error(`${request} is required at run time, but the image installs production dependencies only`);
  }
  return resolve.call(this, request, ...rest);
};
