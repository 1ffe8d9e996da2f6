/** The Asterisk suite (test/suites/asterisk.ts) on the chroot lab, slot 0: it runs beside the other back-end's. */
import { asteriskSuite } from "./suites/asterisk.js";

asteriskSuite("chroot", 0);
