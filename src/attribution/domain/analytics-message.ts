import type { DataIngested } from '../../shared/contracts/data-events.js';
import { ValidationError } from '../../shared/errors.js';
import type { Conversion } from './conversion.js';
import type { Touch } from './touch.js';
import { instantOf, parseConversionValue, readExternalId, parseInstant, sdkVisitor, type InteractionType, type Visitor } from './values.js';

/**
 * Attribution from the Segment / RudderStack tracking API's messages (stored by ingestion as items
 * of channel `analytics_api`, the whole message as payload). A `page` or `track` message that carries
 * `context.campaign` (utm_*) or an outside referrer is a touch; a configured conversion event with a
 * numeric value property is a conversion. The visitor is the user of the application, kept apart
 * from every other application's users and from the tracking API's visitors (see `Visitor`), so
 * no one else's touches ever reach its conversions.
 */
export type ConversionEvents = Readonly<Record<string, string>>;

/**
 * `Order Completed=revenue,Signed Up=value`: each event name with the property holding its value.
 * Throws on a malformed list, so a typo stops the start instead of silently dropping conversions.
 */
export function parseConversionEvents(text: string): ConversionEvents {
  const entries = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0)
    .map((part) => {
      const [event, property, ...rest] = part.split('=').map((s) => s.trim());
      if (!event || !property || rest.length > 0) throw new Error(`"${part}" is not EVENT NAME=value property`);
      return [event, property] as const;
    });
  if (entries.length === 0) throw new Error('names no event');
  return Object.fromEntries(entries);
}

/** Segment's e-commerce spec: an order's revenue is what it brought in. */
export const DEFAULT_CONVERSION_EVENTS: ConversionEvents = { 'Order Completed': 'revenue' };

/**
 * An anonymous id that is known to be a user: an SDK sends the `anonymousId` it kept before `identify`
 * beside the `userId` from then on, and `alias` names the `previousId` a user had. The user's
 * conversions are credited from the anonymous id's touches too, so a campaign visit made before
 * signing in counts for the order placed after it.
 */
export interface IdentityLink {
  readonly anonymous: Visitor;
  readonly user: Visitor;
}

/**
 * How many ties count, in the order the log holds them; later ones are ignored. A backend that sends a
 * fresh `anonymousId` with every call of a user, or one constant `anonymousId` with every user, would
 * otherwise make each conversion read thousands of ids' touches, or each touch re-credit thousands of users.
 */
export const TIE_LIMITS = { anonymousIdsPerUser: 100, usersPerAnonymousId: 10 } as const;
export type TieLimits = { readonly anonymousIdsPerUser: number; readonly usersPerAnonymousId: number };

/**
 * How far ties are followed (decision 0049). An alias's `previousId` is often a user with ties of its
 * own: a user's identities are the ids tied to it, the ids tied to those, and so on, up to `steps` ties
 * away and `ids` ids in all (the nearest first, then by id), as a profile lists at most 250 previous
 * ids. A touch reaches the users above its visitor within the same bounds. Real chains are a few
 * aliases long; the bounds only keep a cycle or a crafted web of ties from making one conversion read
 * thousands of ids.
 */
export const CHAIN_LIMITS = { steps: 10, ids: 250 } as const;

export interface FromMessage {
  readonly touch?: Touch;
  readonly conversion?: Conversion;
  readonly link?: IdentityLink;
}

type Json = Record<string, unknown>;

/**
 * A message of the tracking API that attribution reads: a page or track message (a touch or a
 * conversion), or any message that ties an anonymous id to a user.
 */
export function mayAttribute(data: DataIngested['data']): boolean {
  if (data.metadata?.channel !== 'analytics_api') return false;
  const message = asObject(data.payload);
  if (message.type === 'page' || message.type === 'track') return true;
  const user = idText(message.userId);
  return user !== undefined && (idText(message.anonymousId) ?? idText(message.previousId)) !== undefined;
}

/** The anonymous id the message ties to its user, if any: `previousId` of an alias, else `anonymousId`. */
function linkOf(appId: string, message: Json): IdentityLink | undefined {
  const user = idText(message.userId);
  const anonymous = message.type === 'alias' ? idText(message.previousId) : idText(message.anonymousId);
  if (user === undefined || anonymous === undefined || anonymous === user) return undefined;
  return orUndefined(() => ({
    anonymous: sdkVisitor(appId, readExternalId(anonymous, message.type === 'alias' ? 'previousId' : 'anonymousId')),
    user: sdkVisitor(appId, readExternalId(user, 'userId')),
  }));
}

/** What the message gives attribution, if anything; a message it cannot read gives nothing. */
export function attributionFromMessage(
  data: DataIngested['data'],
  conversionEvents: ConversionEvents,
  ignoredReferrers: readonly string[] = [],
): FromMessage {
  if (!mayAttribute(data)) return {};
  const message = data.payload as Json;
  const link = linkOf(data.partner_id, message);
  if (message.type !== 'page' && message.type !== 'track') return link ? { link } : {};
  try {
    const user = idText(message.userId) ?? idText(message.anonymousId);
    if (!user) return {};
    const visitor = sdkVisitor(data.partner_id, readExternalId(user, 'userId'));
    const occurredAt = parseInstant(message.timestamp ?? data.received_at, 'timestamp');
    const source = campaignOf(message) ?? referralOf(message, ignoredReferrers);
    // A campaign that names no valid id (300 characters, a tab) makes no touch, but the order stays a conversion.
    const touch: Touch | undefined =
      source &&
      orUndefined(() => ({
        trackingEventId: data.item_id,
        visitor,
        partnerId: readExternalId(source.partner, 'context.campaign.source'),
        campaignId: readExternalId(source.campaign, 'context.campaign.name'),
        interactionType: (message.type === 'page' ? 'view' : 'engagement') satisfies InteractionType,
        occurredAt,
      }));
    // The name as stored (its event type): trimmed. Own names only: a track event named "valueOf" is no conversion.
    const eventName = typeof message.event === 'string' ? message.event.trim() : undefined;
    const valueProperty =
      message.type === 'track' && eventName !== undefined && Object.hasOwn(conversionEvents, eventName)
        ? conversionEvents[eventName]
        : undefined;
    const value = valueProperty !== undefined ? asObject(message.properties)[valueProperty] : undefined;
    // A value out of range (below 0, above 10^12) makes no conversion, but the message stays a touch.
    const conversionValue =
      typeof value === 'number' ? orUndefined(() => parseConversionValue(value, `properties.${valueProperty}`)) : undefined;
    const conversion: Conversion | undefined =
      conversionValue !== undefined
        ? { id: data.item_id, visitor, value: conversionValue, occurredAt, recordedAt: instantOf(new Date(data.received_at)) }
        : undefined;
    return { ...(touch ? { touch } : {}), ...(conversion ? { conversion } : {}), ...(link ? { link } : {}) };
  } catch (error) {
    if (error instanceof ValidationError) return link ? { link } : {};
    throw error;
  }
}

function orUndefined<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (error) {
    if (error instanceof ValidationError) return undefined;
    throw error;
  }
}

/** `context.campaign` as analytics.js fills it from utm_* parameters (name, source...), or raw utm_* keys. */
function campaignOf(message: Json): { partner: string; campaign: string } | undefined {
  const campaign = asObject(asObject(message.context).campaign);
  const name = text(campaign.name) ?? text(campaign.utm_campaign);
  const source = text(campaign.source) ?? text(campaign.utm_source);
  if (!name && !source) return undefined;
  return { partner: source ?? 'unknown', campaign: name ?? source ?? 'unknown' };
}

/**
 * A visit referred by another site: the referring host is the partner, the campaign is "referral".
 * The site's own hosts are not another site (`www.shop.example` and `checkout.shop.example` refer to
 * `shop.example`), nor are the hosts the operator names (`ATTRIBUTION_IGNORED_REFERRERS`: payment
 * pages a buyer comes back from), each with its subdomains.
 */
function referralOf(message: Json, ignoredReferrers: readonly string[]): { partner: string; campaign: string } | undefined {
  const context = asObject(message.context);
  const page = asObject(context.page);
  const referrer = text(page.referrer) ?? text(asObject(context.referrer).url) ?? text(asObject(message.properties).referrer);
  const from = hostOf(referrer);
  if (!from) return undefined;
  const site = hostOf(text(page.url) ?? text(asObject(message.properties).url));
  if (site !== undefined && sameSite(from, site)) return undefined;
  if (ignoredReferrers.some((ignored) => withinHost(from, ignored))) return undefined;
  return { partner: from, campaign: 'referral' };
}

const withoutWww = (host: string) => host.replace(/^www\./, '');
const withinHost = (host: string, parent: string) => host === parent || host.endsWith(`.${parent}`);
const sameSite = (a: string, b: string) => withinHost(withoutWww(a), withoutWww(b)) || withinHost(withoutWww(b), withoutWww(a));

/** `ATTRIBUTION_IGNORED_REFERRERS`: host names, comma-separated. */
export function parseIgnoredReferrers(text: string): string[] {
  const hosts = text
    .split(',')
    .map((host) => host.trim().toLowerCase())
    .filter(Boolean);
  for (const host of hosts) {
    if (!/^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(host)) throw new Error(`"${host}" is not a host name (such as paypal.com)`);
  }
  return hosts;
}

function hostOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).hostname || undefined;
  } catch {
    return undefined;
  }
}

const asObject = (value: unknown): Json => (typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {});
// An id is kept as sent, spaces included, as profiles and ingestion keep it: " u1 " is not "u1" (decision 0029).
const idText = (value: unknown): string | undefined =>
  typeof value === 'number' && Number.isFinite(value)
    ? String(value)
    : typeof value === 'string' && value.trim().length > 0
      ? value
      : undefined;
const text = (value: unknown): string | undefined => (typeof value === 'string' && value.trim().length > 0 ? value.trim() : undefined);
