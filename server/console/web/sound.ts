// The P1 sound, generated with WebAudio (no audio file to ship). Browsers start audio only after a user gesture,
// so the login click (or the "enable sound" button after a reload) unlocks it.
let ctx: AudioContext | null = null;

export function unlockSound(): boolean {
  try {
    ctx ??= new AudioContext();
    if (ctx.state === 'suspended') void ctx.resume();
    return true;
  } catch {
    return false;
  }
}

export function soundReady(): boolean {
  return ctx !== null && ctx.state === 'running';
}

/** Three short high beeps: distinct from a phone ring, audible over a call centre. */
export function beepP1(): void {
  if (!ctx || ctx.state !== 'running') return;
  const t0 = ctx.currentTime + 0.01;
  for (let i = 0; i < 3; i++) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'square';
    osc.frequency.value = 1046; // C6
    const start = t0 + i * 0.25;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.25, start + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.18);
    osc.connect(gain).connect(ctx.destination);
    osc.start(start);
    osc.stop(start + 0.2);
  }
}

/** how many P1 sounds played (the browser test reads it: headless Chromium has no speakers) */
export const soundLog: { at: number; incidentId: string; reason: 'new' | 'repeat' | 'reminder' }[] = [];
