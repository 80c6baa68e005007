/** The engine floor's workflows (bench/floor.ts): one and four sequential no-op activities. */
import { proxyActivities } from '@temporalio/workflow';
import type { FloorActivities } from './floor';

const { floorNoop } = proxyActivities<FloorActivities>({ startToCloseTimeout: '10 seconds' });

export async function floorOneActivity(): Promise<void> {
  await floorNoop();
}

export async function floorFourActivities(): Promise<void> {
  for (let i = 0; i < 4; i++) await floorNoop();
}
