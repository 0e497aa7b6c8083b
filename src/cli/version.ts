// moat's version, for --version and the tool record of SARIF output.
export const VERSION = '0.1.0';
