import './base.css';
import './chat.css';
import './instructor.css';
import './knowledge.css';
import './outputs.css';
import './turns.css';
