/**
 * The container lab cleans up after a process that died holding it: a lab
 * container still running when the next lab starts is removed, and a lab's
 * own container is gone after stop. Skips, saying why, without Docker.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { labLockPath } from "../src/lab/config.js";
import { LAB_IMAGE, LAB_LABEL } from "../src/lab/container.js";
import { Lab, labUnavailableReason } from "../src/lab/lab.js";
import { acquireLabLock } from "../src/lab/lock.js";

const unavailable = labUnavailableReason("container");
if (unavailable) console.warn(`skipping the container lab's clean-up test: ${unavailable}`);

/** A slot of its own, so the labs of other test files running meanwhile are not its business. */
const SLOT = 3;
const docker = (args: string[]) => spawnSync("docker", args, { encoding: "utf8" }).stdout.trim();
const labContainers = () => docker(["ps", "-aq", "--no-trunc", "--filter", `label=${LAB_LABEL}=${SLOT}`]).split("\n").filter(Boolean);

describe.skipIf(unavailable !== undefined)("container lab clean-up", () => {
  it("removes a lab container a dead process left behind, and its own at stop", async () => {
    // Made while holding the lab lock, as a lab that then died would have left it.
    const lock = await acquireLabLock(labLockPath(SLOT), 900_000);
    const leftover = docker(["run", "-d", "--label", `${LAB_LABEL}=${SLOT}`, "--network", "host", "--entrypoint", "sleep", LAB_IMAGE, "600"]);
    lock.release();
    expect(leftover).toMatch(/^[0-9a-f]{64}$/);
    const lab = await Lab.start({ backend: "container", slot: SLOT, waitForLabMs: 900_000 });
    try {
      const running = labContainers();
      expect(running).not.toContain(leftover);
      expect(running).toHaveLength(1);
      // Another process (voicecall lab call) finds this lab, not the leftover.
      const attached = await Lab.running({ slot: SLOT });
      expect(attached.backend).toBe("container");
      expect(attached.info.version).toBe(lab.info.version);
    } finally {
      await lab.stop();
    }
    expect(labContainers()).toEqual([]);
  }, 900_000);
});
