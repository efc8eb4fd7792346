export * from './types';
export { ResponseShapeError, parseKernelEvents, parseStatus } from './validate';
export { API_PREFIX, requestAPI } from './request';
export { fetchStatus } from './status';
export { fetchKernelEvents } from './kernelEvents';
