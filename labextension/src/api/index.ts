export * from './types';
export * from './protocol';
export { ResponseShapeError, parseKernelEvents, parseStatus } from './validate';
export { API_PREFIX, ApiError, requestAPI } from './request';
export { fetchStatus } from './status';
export { fetchKernelEvents } from './kernelEvents';
