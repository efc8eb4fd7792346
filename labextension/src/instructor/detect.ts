/** Is this user an instructor? Asked once when the lab starts (see plugin.ts). */
import type { ServerConnection } from '@jupyterlab/services';

import { requestAPI } from '../api/request';
import type { ICourse, InstructorApi } from './api';
import { mayTeach } from './model';

/**
 * The courses the user teaches; empty for everyone else and when there is no broker.
 * Students stop after `auth/me` (no scope `course`), so their lab never calls the
 * instructor API; for instructors the broker decides which courses are theirs.
 */
export async function taughtCourses(
  settings: ServerConnection.ISettings,
  api: InstructorApi
): Promise<ICourse[]> {
  try {
    if (!mayTeach(await requestAPI('auth/me', settings))) {
      return [];
    }
    return await api.courses();
  } catch (error) {
    // No hub extension (404), no broker (503), no course of theirs (403).
    console.debug('aiide: no instructor dashboard:', error);
    return [];
  }
}
