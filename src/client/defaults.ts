/** The user CLI's defaults, free of imports so that the usage text can show them cheaply. */
export const DEFAULT_URL = 'http://127.0.0.1:8080';
