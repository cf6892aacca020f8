import pino, { type Logger } from 'pino';

/** Structured JSON logs with levels, one line per event, naming the replica. */
export function createLogger(replica: string, level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { replica },
      timestamp: pino.stdTimeFunctions.isoTime,
      messageKey: 'msg',
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export type { Logger };
