/** The carrier conformance suite (test/suites/carriers.ts) on the Mock and the cloud carriers' protocol servers; the PBX's runs beside it. */
import { carrierSuite } from "./suites/carriers.js";

carrierSuite(["mock", "twilio", "telnyx", "plivo"]);
