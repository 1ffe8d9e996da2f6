/** The carrier conformance suite (test/suites/carriers.ts) on the lab's Asterisk; the cloud carriers' runs beside it. */
import { carrierSuite } from "./suites/carriers.js";

carrierSuite(["asterisk"]);
