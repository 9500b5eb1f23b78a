import os from 'node:os';

/** One line naming the hardware and runtime, so that figures are never quoted without their context. */
export function machineInfo(): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() ?? 'unknown CPU';
  const memoryGb = (os.totalmem() / 1024 ** 3).toFixed(1);
  return `machine: ${cpus.length} CPU(s), ${model}, ${memoryGb} GB RAM, ${os.type()} ${os.release()} ${os.arch()}, node ${process.version}`;
}
