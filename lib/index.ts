// Public API of the lmdr package. Each concern exports from its own module.
export { UserError } from './errors.ts';
export { native } from './native.ts';
