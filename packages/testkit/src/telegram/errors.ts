/** A Bot API failure: {ok:false,error_code,description,parameters?} with a matching HTTP status. */
export class TgError extends Error {
  readonly errorCode: number;
  readonly description: string;
  readonly parameters?: { retry_after?: number; migrate_to_chat_id?: number };

  constructor(
    errorCode: number,
    description: string,
    parameters?: { retry_after?: number; migrate_to_chat_id?: number },
  ) {
    super(description);
    this.errorCode = errorCode;
    this.description = description;
    if (parameters) this.parameters = parameters;
  }

  static badRequest(detail: string): TgError {
    return new TgError(400, `Bad Request: ${detail}`);
  }

  static tooManyRequests(retryAfter: number): TgError {
    return new TgError(429, `Too Many Requests: retry after ${retryAfter}`, {
      retry_after: retryAfter,
    });
  }

  body(): Record<string, unknown> {
    return {
      ok: false,
      error_code: this.errorCode,
      description: this.description,
      ...(this.parameters ? { parameters: this.parameters } : {}),
    };
  }
}

export const UNAUTHORIZED = new TgError(401, "Unauthorized");
export const NOT_FOUND = new TgError(404, "Not Found");
