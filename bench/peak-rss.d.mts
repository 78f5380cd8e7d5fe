/** This process's peak resident set in MB (VmHWM on Linux, else ru_maxrss). */
export function peakRssMB(): number;
