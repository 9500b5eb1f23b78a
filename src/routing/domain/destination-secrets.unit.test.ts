import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import { credentialsOf, maskedDestination, SECRET_MASK, unmasked } from './destination-secrets.js';

const webhook = (headers: Record<string, string>) => ({
  destination_type: 'webhook',
  destination_config: { url: 'http://127.0.0.1:42010/ok', headers },
});
const queue = (broker: string, url: string) => ({ destination_type: 'queue', destination_config: { broker, url, stream: 's' } });

describe('destination credentials', () => {
  it('finds every webhook header value and a broker URL’s password', () => {
    expect(credentialsOf(webhook({ Authorization: 'Bearer SUPERSECRET123', 'X-Team': 'a' }))).toEqual(
      new Map([
        ['headers.Authorization', 'Bearer SUPERSECRET123'],
        ['headers.X-Team', 'a'],
      ]),
    );
    expect(credentialsOf(queue('redis', 'redis://:hunter2pass@127.0.0.1:6379/5'))).toEqual(new Map([['url', 'hunter2pass']]));
    expect(credentialsOf(queue('rabbitmq', 'amqp://guest:p@ss:w@rd@broker/vh?x=1'))).toEqual(new Map([['url', 'p@ss:w@rd']]));
    // A NATS URL's lone user part is its token; elsewhere a user without a password is no secret.
    expect(credentialsOf(queue('nats', 'nats://s3cr3t@nats:4222'))).toEqual(new Map([['url', 's3cr3t']]));
    expect(credentialsOf(queue('redis', 'redis://user@redis:6379'))).toEqual(new Map());
    expect(credentialsOf(queue('redis', 'redis://redis:6379/0?x=a@b'))).toEqual(new Map());
  });

  it('masks them and nothing else', () => {
    expect(maskedDestination(webhook({ Authorization: 'Bearer SUPERSECRET123' })).destination_config).toEqual({
      url: 'http://127.0.0.1:42010/ok',
      headers: { Authorization: SECRET_MASK },
    });
    expect(maskedDestination(queue('rabbitmq', 'amqp://guest:guest@127.0.0.1:5672/')).destination_config).toMatchObject({
      url: `amqp://guest:${SECRET_MASK}@127.0.0.1:5672/`,
    });
    const database = { destination_type: 'database', destination_config: { table: 't' } };
    expect(maskedDestination(database)).toEqual(database);
  });

  it('takes a mask sent back for the credential it stands for', () => {
    const current = queue('redis', 'redis://:hunter2pass@127.0.0.1:6379/5');
    expect(unmasked(maskedDestination(current), current)).toEqual(current);
    // As a URL library would send it back.
    expect(unmasked(queue('redis', `redis://:${encodeURIComponent(SECRET_MASK)}@127.0.0.1:6379/5`), current)).toEqual(current);
    const hooks = webhook({ Authorization: 'Bearer SUPERSECRET123' });
    expect(unmasked(webhook({ Authorization: SECRET_MASK, 'X-New': 'v' }), hooks).destination_config).toMatchObject({
      headers: { Authorization: 'Bearer SUPERSECRET123', 'X-New': 'v' },
    });
  });

  it('refuses a mask with no credential behind it', () => {
    const attempt = () => unmasked(webhook({ 'X-Other': SECRET_MASK }), webhook({ Authorization: 'Bearer x' }));
    expect(attempt).toThrow(ValidationError);
    expect(attempt).toThrow(/destination_config.headers.X-Other/);
    expect(() => unmasked(webhook({ Authorization: SECRET_MASK }), undefined)).toThrow(ValidationError);
  });
});

describe('destination credentials, further', () => {
  it('seals and masks the credential of each server of a broker URL that lists several', () => {
    const several = queue('nats', 'nats://TOKENA@127.0.0.1:4222,nats://TOKENB@127.0.0.2:4222');
    expect(credentialsOf(several)).toEqual(
      new Map([
        ['url[0]', 'TOKENA'],
        ['url[1]', 'TOKENB'],
      ]),
    );
    expect(maskedDestination(several).destination_config.url).toBe(
      `nats://${SECRET_MASK}@127.0.0.1:4222,nats://${SECRET_MASK}@127.0.0.2:4222`,
    );
    expect(unmasked(maskedDestination(several), several)).toEqual(several);
    const amqp = queue('rabbitmq', 'amqp://u:PASSA@h1:5672,amqp://u:PASSB@h2:5672');
    expect([...credentialsOf(amqp).values()]).toEqual(['PASSA', 'PASSB']);
  });

  it('keeps no credential for a mask sent to another address', () => {
    const current = webhook({ Authorization: 'Bearer SECRET' });
    const elsewhere = {
      ...current,
      destination_config: { url: 'http://127.0.0.1:43898/attacker', headers: { Authorization: SECRET_MASK } },
    };
    expect(() => unmasked(elsewhere, current)).toThrow(/address changed/);
    const redis = queue('redis', 'redis://:hunter2pass@127.0.0.1:6379/5');
    expect(() => unmasked(queue('redis', `redis://:${SECRET_MASK}@10.0.0.9:6379/5`), redis)).toThrow(/address changed/);
  });

  it('takes a mask sent back under a header name in another case', () => {
    const current = webhook({ Authorization: 'Bearer SECRET' });
    expect(unmasked(webhook({ authorization: SECRET_MASK }), current).destination_config).toMatchObject({
      headers: { authorization: 'Bearer SECRET' },
    });
  });
});

describe('credentials in a webhook URL’s query', () => {
  const webhook = (url: string) => ({ destination_type: 'webhook', destination_config: { url } });

  it('finds the values of parameters named like credentials, each of a repeated name apart, and none in the fragment', () => {
    const found = credentialsOf(
      webhook('https://h.example/p?Token=a&page=2&api_key=b&token=c&monkey=no&code=&sig=d&private_token=e&X-Api-Key=f&x%5Fjwt=g#key=h'),
    );
    expect(Object.fromEntries(found)).toEqual({
      'url.query.Token': 'a',
      'url.query.api_key': 'b',
      'url.query.token': 'c',
      'url.query.sig': 'd',
      'url.query.private_token': 'e',
      'url.query.X-Api-Key': 'f',
      'url.query.x_jwt': 'g',
    });
  });

  it('masks them in place, and takes the mask back, percent-encoded or not', () => {
    const given = webhook('https://h.example/p?team=t&token=abc');
    const shown = maskedDestination(given);
    expect(shown.destination_config.url).toBe(`https://h.example/p?team=t&token=${SECRET_MASK}`);
    expect(unmasked(webhook(`https://h.example/p?team=t&token=${encodeURIComponent(SECRET_MASK)}`), given)).toEqual(given);
    expect(() => unmasked(webhook(`https://h.example/q?team=t&token=${SECRET_MASK}`), given)).toThrow(ValidationError);
  });
});
