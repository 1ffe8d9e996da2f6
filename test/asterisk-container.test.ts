/** The Asterisk suite (test/suites/asterisk.ts) on the container lab, slot 1: it runs beside the other back-end's. */
import { asteriskSuite } from "./suites/asterisk.js";

asteriskSuite("container", 1);
