// The monthly test alarm of every terminal, and the technician's test at commissioning (Contact ID 601-603, a
// `test` event, the 'test-alarm' command): recorded as an incident marked `test: true`, P3, so the whole path
// (device → rules → incident → console) is proven end to end, and never mistaken for an emergency.
import type { Rule } from './types.js';

export const TEST_ALARM = 'test';

export const testAlarmRule: Rule = {
  name: 'test-alarm',
  on: ['test'],
  evaluate(obs) {
    if (obs.type !== 'test' || obs.restore) return undefined;
    return {
      alarms: [{
        action: 'raise', type: TEST_ALARM, priority: 'P3', test: true, rule: 'test-alarm',
        data: { ...(obs.detail && { detail: obs.detail }), ...(obs.deviceTs !== undefined && { deviceTs: obs.deviceTs }) },
      }],
    };
  },
};
