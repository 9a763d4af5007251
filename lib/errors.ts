/** An error caused by the user's input (file, flag, data): the CLI prints its message and exits 1. */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}
