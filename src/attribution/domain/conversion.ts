import { ConflictError, parseAll } from '../../shared/errors.js';
import {
  INVALID_CONVERSION,
  instantOf,
  parseConversionValue,
  parseExternalId,
  readExternalId,
  parseInstant,
  parseOccurredAt,
  trackedVisitor,
  type Instant,
  type Visitor,
} from './values.js';

/** A visitor did what the campaigns were for (bought, signed up): the value their touches share. */
export interface Conversion {
  readonly id: string;
  /** A conversion of the tracking API (`ConversionRecorded`) has a visitor of the tracking API. */
  readonly visitor: Visitor;
  readonly value: number;
  readonly occurredAt: Instant;
  readonly recordedAt: Instant;
}

/** Fields straight from the client, not yet trusted. */
export interface RecordConversionCommand {
  readonly visitorId: unknown;
  readonly value: unknown;
  readonly occurredAt?: unknown;
}

/** Published as `conversion.recorded.v1` (docs/tracking-events.md). */
export interface ConversionRecorded {
  readonly type: 'ConversionRecorded';
  readonly data: { conversion_id: string; visitor_id: string; value: number; occurred_at: string; recorded_at: string };
}

export type ConversionEvent = ConversionRecorded;

export const CONVERSION_PUBLISHED_AS = 'conversion.recorded.v1';
export const CONVERSION_SCHEMA_VERSION = 1;

export type ConversionState = { readonly status: 'absent' } | { readonly status: 'recorded'; readonly conversion: Conversion };

export const noConversion: ConversionState = { status: 'absent' };

export const conversionStreamId = (id: string) => `conversion-${id}`;

/** Builds a valid conversion of a tracking-API visitor, or throws one ValidationError listing every invalid field. */
export function conversionFromCommand(command: RecordConversionCommand, id: string, receivedAt: Date): Conversion {
  const fields = parseAll<Pick<Conversion, 'visitor' | 'value' | 'occurredAt'>>(INVALID_CONVERSION, 'conversion', {
    visitor: () => trackedVisitor(parseExternalId(command.visitorId, 'visitor_id')),
    value: () => parseConversionValue(command.value),
    occurredAt: () => parseOccurredAt(command.occurredAt, receivedAt),
  });
  return { id, ...fields, recordedAt: instantOf(receivedAt) };
}

export function decideRecordConversion(conversion: Conversion, state: ConversionState): ConversionEvent[] {
  if (state.status !== 'absent') {
    throw new ConflictError('attribution.conversion-already-recorded', `conversion ${conversion.id} was already recorded`);
  }
  return [
    {
      type: 'ConversionRecorded',
      data: {
        conversion_id: conversion.id,
        visitor_id: conversion.visitor.id,
        value: conversion.value,
        occurred_at: conversion.occurredAt,
        recorded_at: conversion.recordedAt,
      },
    },
  ];
}

export function evolveConversion(_state: ConversionState, event: ConversionEvent): ConversionState {
  switch (event.type) {
    case 'ConversionRecorded':
      return { status: 'recorded', conversion: conversionFromRecorded(event.data) };
  }
}

/** Reads a recorded conversion back; it was valid when recorded, so only its shape is checked. */
export function conversionFromRecorded(data: unknown): Conversion {
  const fields = (data ?? {}) as Partial<Record<keyof ConversionRecorded['data'], unknown>>;
  return parseAll<Conversion>('attribution.unreadable-event', 'ConversionRecorded', {
    id: () => readExternalId(fields.conversion_id, 'conversion_id') as string,
    visitor: () => trackedVisitor(readExternalId(fields.visitor_id, 'visitor_id')),
    value: () => parseConversionValue(fields.value),
    occurredAt: () => parseInstant(fields.occurred_at, 'occurred_at'),
    recordedAt: () => parseInstant(fields.recorded_at, 'recorded_at'),
  });
}
