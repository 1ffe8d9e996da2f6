// The plugin's doctor contract (openclaw.plugin.json: doctorContract.configRepair): see src/gateway/doctor-contract.ts.
export { legacyConfigRules, normalizeCompatibilityConfig } from "./dist/gateway/doctor-contract.js";
