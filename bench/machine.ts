// How busy the machine is (other processes), printed with every benchmark figure so a reader can
// judge it: load averages and, where the kernel reports them, CPU and IO pressure (Linux PSI).
import { readFileSync } from 'node:fs';

function read(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export function machineLoad(): string {
  const load = read('/proc/loadavg').split(' ').slice(0, 3).join(' ');
  const cpu = /some avg10=([\d.]+)/.exec(read('/proc/pressure/cpu'))?.[1];
  const io = /some avg10=([\d.]+)/.exec(read('/proc/pressure/io'))?.[1];
  return `load ${load}${cpu ? `, cpu pressure ${cpu}%` : ''}${io ? `, io pressure ${io}%` : ''}`;
}
