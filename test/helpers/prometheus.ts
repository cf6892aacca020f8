/** The Prometheus HTTP API of a running Prometheus; an error (bad PromQL) throws with Prometheus's message. */
export async function prometheusApi(base: string, path: string, params: Record<string, string> = {}): Promise<any> {
  const res = await fetch(`${base}${path}?${new URLSearchParams(params)}`);
  const body = (await res.json()) as { status: string; data: any; error?: string };
  if (body.status !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${body.error}`);
  return body.data;
}

export type InstantVector = { metric: Record<string, string>; value: [number, string] }[];

export async function prometheusQuery(base: string, expr: string): Promise<InstantVector> {
  return (await prometheusApi(base, '/api/v1/query', { query: expr })).result;
}
