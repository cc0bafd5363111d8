// Notification channels: the only places a notification may go. An admin configures them
// (`notifiers.channels`); operators and technicians name one in a contact's or a unit's `webhook`. A URL there is
// a value from before channels existed: it is used only if a channel has exactly that URL, otherwise nothing is
// sent and the timeline says why (docs/security.md, "Notification channels").
import { NOTIFY_CHANNEL_NAME_PATTERN, type Config, type NotifyChannel } from '../../core/config.js';
import { ValidationError } from '../../core/errors.js';

export { NOTIFY_CHANNEL_NAME_PATTERN };
const NAME = new RegExp(NOTIFY_CHANNEL_NAME_PATTERN);

type NotifierSettings = Pick<Config, 'notifiers'>;

export interface ChannelTarget {
  channel: string;
  url: string;
  secret?: string;
  allowPrivate: boolean;
  /** the stored value was a URL that matched this channel's URL exactly */
  fromUrl?: boolean;
}

export const channelsOf = (config: NotifierSettings): Readonly<Record<string, NotifyChannel>> => config.notifiers.channels ?? {};
export const channelNames = (config: NotifierSettings): string[] => Object.keys(channelsOf(config)).sort();
export const looksLikeUrl = (value: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(value);

const listed = (config: NotifierSettings) => {
  const names = channelNames(config);
  return names.length ? names.join(', ') : 'none: an admin must add one to notifiers.channels first';
};

export function channelTarget(config: NotifierSettings, name: string): ChannelTarget | undefined {
  const channels = channelsOf(config);
  if (!Object.hasOwn(channels, name)) return undefined;
  const ch = channels[name]!;
  return { channel: name, url: ch.url, allowPrivate: ch.allowPrivate === true, ...(ch.secret ? { secret: ch.secret } : {}) };
}

/** What a stored `webhook` value sends to, or why nothing is sent (for the timeline: never the stored URL). */
export function resolveWebhook(config: NotifierSettings, value: string): { ok: true; target: ChannelTarget } | { ok: false; reason: string } {
  const byName = channelTarget(config, value);
  if (byName) return { ok: true, target: byName };
  if (looksLikeUrl(value)) {
    for (const [name, ch] of Object.entries(channelsOf(config))) {
      if (ch.url === value) return { ok: true, target: { ...channelTarget(config, name)!, fromUrl: true } };
    }
    return {
      ok: false,
      reason: `not sent: the webhook is a URL from before notification channels; an admin must replace it with a channel name (configured: ${listed(config)})`,
    };
  }
  const shown = value.length > 64 ? value.slice(0, 63) + '…' : value;
  return { ok: false, reason: `not sent: "${shown}" is not a configured notification channel (configured: ${listed(config)})` };
}

/** API validation: `value` must name a configured channel; the 400 lists the channels there are. */
export function requireChannel(config: NotifierSettings, field: string, value: string | null | undefined): void {
  if (value === null || value === undefined || value === '') return;
  if (channelTarget(config, value)) return;
  const channels = channelNames(config);
  const what = looksLikeUrl(value)
    ? 'a URL is not accepted: notifications go only to channels an admin has configured'
    : `"${value}" is not a configured notification channel`;
  throw new ValidationError(`${field}: ${what}; give one of: ${listed(config)}`, { field, channels });
}

/** A channel name's shape (the unit store checks it; the routes check that the channel exists). */
export const isChannelName = (value: string) => NAME.test(value);
