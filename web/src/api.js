// HTTP calls to the service that served the page (relative URLs: the console works behind a
// path prefix too).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function readError(reply) {
  try {
    const body = await reply.json();
    if (typeof body.detail === "string") return body.detail;
    if (body.detail) return JSON.stringify(body.detail);
    if (body.error) return String(body.error);
  } catch {
    // not JSON
  }
  return `HTTP ${reply.status}`;
}

export async function getJson(path) {
  const reply = await fetch(path, { cache: "no-store" });
  if (!reply.ok) throw new ApiError(reply.status, await readError(reply));
  return reply.json();
}

/** POST /api/alerts/{id}/{verb}; resolves to the alert's properties after the action. */
export async function act(alertId, verb, body) {
  const reply = await fetch(`api/alerts/${encodeURIComponent(alertId)}/${verb}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!reply.ok) throw new ApiError(reply.status, await readError(reply));
  const answer = await reply.json();
  return answer.alert;
}
